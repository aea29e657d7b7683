"""``GET /healthz`` (the process answers) and ``GET /readyz`` (database and Redis answer)."""

from __future__ import annotations

from typing import Annotated, Literal

import structlog
from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import text

from gradeflow.api.errors import ApiError
from gradeflow.api.schemas.errors import error_responses
from gradeflow.api.services import Services, get_services

router = APIRouter(tags=["health"])
log = structlog.get_logger(__name__)


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    checks: dict[str, Literal["ok"]]


@router.get("/healthz")
def healthz() -> Health:
    """Liveness: the process serves requests (nothing else is checked)."""
    return Health()


@router.get("/readyz", responses=error_responses(503))
def readyz(services: Annotated[Services, Depends(get_services)]) -> Readiness:
    """Readiness: PostgreSQL and Redis both answer; 503 naming what does not."""
    failures = [
        {"component": name, "reason": reason}
        for name, reason in (
            ("database", database_problem(services)),
            ("redis", redis_problem(services)),
        )
        if reason
    ]
    if failures:
        names = " and ".join(f["component"] for f in failures)
        raise ApiError(503, "not_ready", f"not ready: {names} unavailable", failures)
    return Readiness(checks={"database": "ok", "redis": "ok"})


def database_problem(services: Services) -> str | None:
    try:
        with services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return problem("database", exc)
    return None


def redis_problem(services: Services) -> str | None:
    try:
        services.redis.ping()
    except Exception as exc:
        return problem("redis", exc)
    return None


def problem(component: str, exc: Exception) -> str:
    """The reason given to the (unauthenticated) caller: no hosts or URLs; the log has them."""
    log.warning("readiness check failed", component=component, error=" ".join(str(exc).split()))
    return f"{component} did not answer ({type(exc).__name__})"
