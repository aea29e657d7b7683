"""Pages and fragments from Jinja templates, with the headers every dashboard answer
carries: a strict Content-Security-Policy (only this site's scripts and styles, no
inline script), no framing, no caching of operator data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from gradeflow.ops.dashboard import views
from gradeflow.ops.dashboard.sessions import Signer, signer_for
from gradeflow.settings import Settings

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass
class Dashboard:
    """What the dashboard's routes share for the app's lifetime (``app.state.dashboard``)."""

    settings: Settings
    signer: Signer
    templates: Jinja2Templates

    @classmethod
    def from_settings(cls, settings: Settings) -> Dashboard:
        return cls(settings, signer_for(settings), make_templates())


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates")
    env = templates.env
    env.filters["duration"] = views.duration
    env.filters["percent"] = views.percent
    env.filters["when"] = when
    env.filters["ago"] = ago
    env.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True, default=str)
    env.globals["may_retry"] = views.may_retry
    env.globals["may_cancel"] = views.may_cancel
    return templates


def when(value: datetime | None) -> str:
    """A timestamp in UTC to the second (operators compare it with logs)."""
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def ago(value: datetime | None) -> str:
    if value is None:
        return "—"
    seconds = (datetime.now(UTC) - value).total_seconds()
    return f"in {views.duration(-seconds)}" if seconds < 0 else f"{views.duration(seconds)} ago"


def dashboard_of(request: Request) -> Dashboard:
    found: Dashboard = request.app.state.dashboard
    return found


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    dashboard = dashboard_of(request)
    full = {"refresh_ms": int(dashboard.settings.dashboard_refresh_seconds * 1000), **context}
    response = dashboard.templates.TemplateResponse(request, template, full, status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def json_answer(content: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse(content, status_code, headers=SECURITY_HEADERS)


def wants_json(request: Request) -> bool:
    """Requests from the dashboard's own script (fetch) get JSON or fragments back."""
    return request.headers.get("x-requested-with") == "gradeflow-dashboard"
