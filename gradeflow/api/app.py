"""The app factory: ``create_app(settings)`` wires routes, errors, limits and services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from gradeflow.api.body_limit import BodyLimitMiddleware
from gradeflow.api.errors import install_error_handlers
from gradeflow.api.routes import (
    assessments,
    credentials,
    health,
    jobs,
    metrics,
    questions,
    recommendations,
    roles,
    webhooks,
)
from gradeflow.api.services import Services
from gradeflow.jobs.registry import load_job_types
from gradeflow.logs import RequestLogContext, configure_logging
from gradeflow.settings import Settings, get_settings

DESCRIPTION = """The intake API of gradeflow. Every endpoint but health needs
`Authorization: Bearer <api key>` (keys come from `gradeflow clients create`).
Every error is `{"error": {"code", "message", "details"}}`."""


def create_app(settings: Settings) -> FastAPI:
    """The API for ``settings`` (which must carry DATABASE_URL and REDIS_URL)."""
    # Job types decide the queue each enqueued job goes to.
    load_job_types()
    services = Services.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        services.close()

    app = FastAPI(
        title="gradeflow",
        version="1",
        description=DESCRIPTION,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.services = services
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestLogContext)
    modules = (
        health,
        roles,
        questions,
        credentials,
        assessments,
        recommendations,
        webhooks,
        jobs,
        metrics,
    )
    routers = [module.router for module in modules]
    for router in routers:
        app.include_router(router)
    #: What the 405 handler reads to name every allowed method of a path.
    app.state.api_routes = [
        r for router in routers for r in router.routes if isinstance(r, APIRoute)
    ]
    return app


def app_from_environment() -> FastAPI:
    """The app for the settings of the environment (``gradeflow api``'s factory)."""
    configure_logging()
    return create_app(get_settings())
