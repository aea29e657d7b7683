"""Essay grading: an LLM against the question's analytic rubric, with an offline fallback.

- ``score_essay`` (queue ``llm``, one job per essay): the model grades when
  ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set, else the offline scorer
  does at once (and the assessment ends ``degraded``). Its concurrency and
  requests per minute are the ``llm`` queue's settings.
- ``score_essay_offline`` (queue ``cpu``): the pipeline enqueues it for an
  essay whose ``score_essay`` job ended dead.

Both finish through :func:`gradeflow.jobs.pipeline.advance`. Modules:
``prompt`` (messages and schema), ``injection`` (checks before the call),
``llm`` (the SDK call and its errors), ``grade`` (clamping and points),
``cost``, ``fallback`` (the offline scorer), ``handlers`` (the jobs).
"""

from __future__ import annotations

from gradeflow.jobs.essays.handlers import score_essay, score_essay_offline
from gradeflow.jobs.pipeline import SCORE_ESSAY, SCORE_ESSAY_OFFLINE, advance
from gradeflow.jobs.registry import JobType, register

SCORE_ESSAY_JOB = register(
    JobType(
        name=SCORE_ESSAY, handler=score_essay, queue="llm", limits_at_call=True, on_finish=advance
    )
)
SCORE_ESSAY_OFFLINE_JOB = register(
    JobType(name=SCORE_ESSAY_OFFLINE, handler=score_essay_offline, queue="cpu", on_finish=advance)
)
