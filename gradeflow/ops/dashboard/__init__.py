"""The operator's dashboard at ``/ops``: server-rendered pages over the same reads and
guarded writes as the API, a session cookie for operator and admin keys, and a little
script of our own that keeps the pages live. No CDN, no build step: templates and
static files ship in this package.

:func:`install_dashboard` adds it to an app built by
:func:`gradeflow.api.app.create_app`; :mod:`gradeflow.ops.dashboard.web` is the factory
``gradeflow api`` serves (the API must not import ``ops``, so the wiring lives here).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from gradeflow.ops.dashboard import access, actions, login, pages
from gradeflow.ops.dashboard.rendering import HERE, Dashboard
from gradeflow.ops.dashboard.sessions import PREFIX
from gradeflow.settings import Settings


def install_dashboard(app: FastAPI, settings: Settings) -> None:
    """Serve the dashboard under ``/ops`` from ``app``."""
    app.state.dashboard = Dashboard.from_settings(settings)
    access.install_handlers(app)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="ops-static")
    routers = [login.router, actions.router, pages.router]
    for router in routers:
        app.include_router(router)
    # The API's 405 answers name every method a path allows; let them see these too.
    app.state.api_routes = [
        *getattr(app.state, "api_routes", []),
        *(r for router in routers for r in router.routes if isinstance(r, APIRoute)),
    ]
