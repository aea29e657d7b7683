"""The pipeline of one assessment, advanced in Postgres as each of its jobs finishes.

```
intake ─► score_rules (every multiple-choice and profile answer)
        + score_essay x each essay (LLM; the offline scorer when none is configured)
all terminal ─► score_essay_offline x each essay still unscored (its LLM job died)
all terminal ─► build_recommendations (the recommendation row starts ``pending``)
its end      ─► finalize: completed (degraded when an essay was graded offline),
                or failed when rule scoring died (no recommendation is built)
```

The recommendation is part of the result: the assessment completes only after
its ``build_recommendations`` job ends, ready or failed, and ``assessment.completed``
carries it.

Every scoring job's ``on_finish`` hook calls :func:`advance` in the transaction
that finishes it; the hook locks the assessment row first, so of two jobs
finishing together exactly one sees the stage complete. Jobs that end without
their hook (cancelled by an operator, given up by the rescuer) are caught by the
scheduler's :class:`~gradeflow.workers.maintenance.PipelineSweeper`.

Decide, then write: :func:`next_step` is pure; :func:`take_step` writes it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection

from gradeflow.db.assessments import (
    Progress,
    assessment_record,
    finish_assessment,
    lock_progress,
    question_results,
)
from gradeflow.db.metrics import record_assessment_metrics
from gradeflow.db.recommendations import (
    create_pending_recommendation,
    fail_recommendation,
    recommendation_record,
)
from gradeflow.jobs import states
from gradeflow.jobs.registry import JobContext, NewJob
from gradeflow.jobs.results import compute_result
from gradeflow.jobs.views import assessment_view
from gradeflow.jobs.webhooks import emit_event

log = structlog.get_logger(__name__)

SCORE_RULES = "score_rules"
SCORE_ESSAY = "score_essay"
SCORE_ESSAY_OFFLINE = "score_essay_offline"
BUILD_RECOMMENDATIONS = "build_recommendations"
#: The job types whose ends move an assessment along (its webhook deliveries do not).
PIPELINE_JOB_TYPES = frozenset(
    {SCORE_RULES, SCORE_ESSAY, SCORE_ESSAY_OFFLINE, BUILD_RECOMMENDATIONS}
)
#: Question types scored by rules (one ``score_rules`` job for all of them).
RULE_QUESTION_TYPES = ("multiple_choice", "profile")
UNFINISHED = (states.QUEUED, states.RUNNING)


def scoring_jobs(
    assessment_id: uuid.UUID, client_id: uuid.UUID | None, question_types: Mapping[uuid.UUID, str]
) -> list[NewJob]:
    """The first stage of a new assessment, given each snapshot's question type."""
    jobs = []
    if any(kind in RULE_QUESTION_TYPES for kind in question_types.values()):
        jobs.append(
            NewJob(
                SCORE_RULES,
                payload={"assessment_id": str(assessment_id)},
                assessment_id=assessment_id,
                client_id=client_id,
                dedup_key=str(assessment_id),
            )
        )
    jobs.extend(
        essay_job(SCORE_ESSAY, assessment_id, client_id, snapshot_id)
        for snapshot_id, kind in question_types.items()
        if kind == "essay"
    )
    return jobs


def essay_job(
    job_type: str, assessment_id: uuid.UUID, client_id: uuid.UUID | None, snapshot_id: uuid.UUID
) -> NewJob:
    return NewJob(
        job_type,
        payload={"assessment_id": str(assessment_id), "snapshot_id": str(snapshot_id)},
        assessment_id=assessment_id,
        client_id=client_id,
        dedup_key=str(snapshot_id),
    )


@dataclass(frozen=True)
class Wait:
    """Jobs of the assessment are still to run (or it has left the pipeline)."""


@dataclass(frozen=True)
class GradeOffline:
    """Grade these essays with the offline scorer: their LLM job ended without a score."""

    snapshot_ids: Sequence[uuid.UUID]


@dataclass(frozen=True)
class Recommend:
    """Every answer is scored: build the recommendation."""


@dataclass(frozen=True)
class Finish:
    status: str
    reason: str


Step = Wait | GradeOffline | Recommend | Finish


def next_step(progress: Progress) -> Step:
    """What the assessment needs next, from its progress alone."""
    jobs = Counter({key: n for key, n in progress.jobs.items() if key[0] in PIPELINE_JOB_TYPES})
    if progress.status != "awaiting_async" or any(s in UNFINISHED for _, s in jobs):
        return Wait()
    rule_jobs = sum(n for (kind, _), n in jobs.items() if kind == SCORE_RULES)
    if rule_jobs and not jobs[(SCORE_RULES, states.SUCCEEDED)]:
        return Finish("failed", "rule scoring did not succeed")
    if progress.unscored_essays:
        if any(kind == SCORE_ESSAY_OFFLINE for kind, _ in jobs):
            return Finish("failed", "the offline essay scorer did not succeed")
        return GradeOffline(progress.unscored_essays)
    if not any(kind == BUILD_RECOMMENDATIONS for kind, _ in jobs):
        return Recommend()
    return Finish("completed", "every answer is scored and the recommendation stage ended")


def take_step(
    conn: Connection, assessment_id: uuid.UUID, progress: Progress, step: Step
) -> list[NewJob]:
    """Write ``step``; return the jobs to enqueue in the same transaction."""
    if isinstance(step, GradeOffline):
        log.info("grading essays offline", essays=len(step.snapshot_ids))
        return [
            essay_job(SCORE_ESSAY_OFFLINE, assessment_id, progress.client_id, snapshot_id)
            for snapshot_id in step.snapshot_ids
        ]
    if isinstance(step, Recommend):
        create_pending_recommendation(conn, assessment_id)
        return [
            NewJob(
                BUILD_RECOMMENDATIONS,
                payload={"assessment_id": str(assessment_id)},
                assessment_id=assessment_id,
                client_id=progress.client_id,
                dedup_key=str(assessment_id),
            )
        ]
    if isinstance(step, Finish):
        if not progress.jobs[(BUILD_RECOMMENDATIONS, states.SUCCEEDED)]:
            # A recommendation still pending now never will be built (its job was
            # cancelled, or the assessment failed before the stage): say so.
            create_pending_recommendation(conn, assessment_id)
            fail_recommendation(conn, assessment_id, f"not built: {step.reason}")
        result = compute_result(question_results(conn, assessment_id))
        finished = finish_assessment(
            conn,
            assessment_id,
            status=step.status,
            degraded=result.degraded,
            total_score=result.total_score,
            skill_scores=result.skill_scores,
        )
        if finished:
            record_assessment_metrics(conn, assessment_id)
        log.info("assessment finished", status=step.status, reason=step.reason)
        if finished and progress.client_id is not None:
            return announce(conn, assessment_id, progress.client_id, step.status)
    return []


def announce(
    conn: Connection, assessment_id: uuid.UUID, client_id: uuid.UUID, status: str
) -> list[NewJob]:
    """``assessment.completed`` or ``assessment.failed`` (by the ``status`` it was just
    finished with) to the client's endpoints, in the transaction that finished the
    assessment; the data is what ``GET`` returns now."""

    def data() -> dict[str, Any]:
        record = assessment_record(conn, assessment_id)
        assert record is not None
        view = assessment_view(
            record,
            question_results(conn, assessment_id),
            recommendation_record(conn, assessment_id),
        )
        return view.model_dump(mode="json")

    return emit_event(conn, client_id, f"assessment.{status}", data, assessment_id=assessment_id)


def advance_assessment(conn: Connection, assessment_id: uuid.UUID) -> list[NewJob]:
    """Lock the assessment, decide its next step, and write it."""
    progress = lock_progress(conn, assessment_id)
    if progress is None:
        return []
    return take_step(conn, assessment_id, progress, next_step(progress))


def advance(conn: Connection, context: JobContext, status: str) -> list[NewJob]:
    """The ``on_finish`` hook of every pipeline job."""
    if context.assessment_id is None:
        return []
    return advance_assessment(conn, context.assessment_id)
