"""``python -m controller`` runs the ``streetlight`` command line."""

from controller.cli import app

app()
