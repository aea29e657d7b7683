"""``GET /metrics``: Prometheus's text format, for anyone (like the health checks).

Left out of the OpenAPI spec: it is not part of the JSON API, and its format is
Prometheus's. What it serves is listed in :mod:`gradeflow.metrics`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from gradeflow.api.services import Services, get_services
from gradeflow.jobs.registry import QUEUES, registered
from gradeflow.metrics import DatabaseCollector, metrics_directory

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
def metrics(services: Annotated[Services, Depends(get_services)]) -> Response:
    """What this host's worker processes recorded, and the figures Postgres holds now."""
    return Response(scrape(services), media_type=CONTENT_TYPE_LATEST)


def scrape(services: Services) -> bytes:
    """One scrape: the multiprocess files added up, plus a read of the database."""
    directory = metrics_directory(services.settings)
    directory.mkdir(parents=True, exist_ok=True)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    registry.register(
        DatabaseCollector(
            services.engine,
            known=[(kind.queue, kind.name) for kind in registered()],
            queues=QUEUES,
            count_cap=services.settings.metrics_count_cap,
        )
    )
    return generate_latest(registry)
