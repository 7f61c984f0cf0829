"""The operators' dashboard: server-rendered pages served by the API at ``/``."""

from __future__ import annotations

from fastapi import FastAPI


def install_dashboard(app: FastAPI) -> None:
    """Mount the dashboard's pages and static assets on ``app``."""
