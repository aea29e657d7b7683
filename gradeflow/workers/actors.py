"""One thin Dramatiq actor per job type: it only hands the job id to the execute path."""

from __future__ import annotations

from collections.abc import Callable

import dramatiq

from gradeflow.jobs.registry import JobType, registered
from gradeflow.workers.execute import execute


def actor_function(job_type_name: str) -> Callable[[str], None]:
    def run_job(job_id: str) -> None:
        execute(job_type_name, job_id)

    run_job.__name__ = f"run_{job_type_name.replace('.', '_')}"
    return run_job


def declare_actor(broker: dramatiq.Broker, job_type: JobType) -> None:
    """Declare ``job_type``'s actor on ``broker`` (once); Dramatiq's retries stay off."""
    if job_type.name in broker.actors:
        return
    declare = dramatiq.actor(
        actor_name=job_type.name,
        queue_name=job_type.queue,
        max_retries=0,
        # Dramatiq's TimeLimit interrupts the attempt; execute() records it as a timeout.
        time_limit=int(job_type.time_limit_seconds * 1000),
        broker=broker,
    )
    declare(actor_function(job_type.name))


def declare_actors(broker: dramatiq.Broker) -> None:
    for job_type in registered():
        declare_actor(broker, job_type)
