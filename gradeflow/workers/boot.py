"""Entry point the ``dramatiq`` command loads in every worker process.

``gradeflow worker`` runs ``dramatiq gradeflow.workers.boot:boot``: this
imports every job module (gradeflow's own and any listed in
``GRADEFLOW_JOB_MODULES``), builds the broker, and declares one actor per job type.
"""

from __future__ import annotations

import os

from gradeflow.jobs.registry import load_job_types
from gradeflow.logs import configure_logging
from gradeflow.metrics import metrics_directory
from gradeflow.settings import get_settings
from gradeflow.workers.actors import declare_actors
from gradeflow.workers.broker import get_broker
from gradeflow.workers.metrics import install as install_metrics
from gradeflow.workers.middleware import JobEngineMiddleware


def import_job_modules() -> None:
    """gradeflow's job types, and those of the modules ``GRADEFLOW_JOB_MODULES`` lists."""
    extra = [m for m in os.environ.get("GRADEFLOW_JOB_MODULES", "").split(",") if m.strip()]
    load_job_types(extra)


def boot() -> None:
    """Make this process's broker, with every job type's actor declared."""
    configure_logging()
    import_job_modules()
    broker = get_broker(get_settings())
    if not any(isinstance(m, JobEngineMiddleware) for m in broker.middleware):
        broker.add_middleware(JobEngineMiddleware())
    install_metrics(broker, metrics_directory(get_settings()))
    declare_actors(broker)
