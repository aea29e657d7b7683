"""The web process's app: the HTTP API plus the dashboard (``gradeflow api`` serves it)."""

from __future__ import annotations

from fastapi import FastAPI

from gradeflow.api.app import create_app
from gradeflow.logs import configure_logging
from gradeflow.ops.dashboard import install_dashboard
from gradeflow.settings import Settings, get_settings


def create_web_app(settings: Settings) -> FastAPI:
    app = create_app(settings)
    install_dashboard(app, settings)
    return app


def web_app_from_environment() -> FastAPI:
    """The web app for the settings of the environment (uvicorn's factory)."""
    configure_logging()
    return create_web_app(get_settings())
