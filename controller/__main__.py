"""``python -m controller`` runs the ``streetlight`` command line."""

from controller.app.cli import app

app()
