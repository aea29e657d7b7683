"""The ``metric_type`` of each ``metric_snapshots`` row: written by ``snapshot_metrics``,
read by the dashboard's charts. One place, so writer and reader cannot drift.

Global rows (``assessment_id`` null) are written once a minute; ``context`` names the
series (``{"queue": ..., "job_type": ...}`` or ``{"queue": ...}``). Per-assessment rows
are written once, when the assessment finishes.
"""

from __future__ import annotations

# -- global, every minute -----------------------------------------------------------------

#: Jobs ``queued`` now; context ``{"queue", "job_type"}``.
QUEUE_DEPTH = "queue_depth"
#: Jobs ``running`` now; context ``{"queue", "job_type"}``.
RUNNING = "running"
#: Age in seconds of the oldest ``queued`` job that is due; context ``{"queue"}``.
OLDEST_QUEUED_S = "oldest_queued_s"
#: Jobs that succeeded in the last minute; context ``{"queue", "job_type"}``.
THROUGHPUT = "throughput"
#: Attempts that failed (retried or dead) in the last minute; context ``{"queue", "job_type"}``.
FAILURES = "failures"
#: 95th percentile of enqueue → start over the last minute, ms; context ``{"queue"}``.
PICKUP_P95_MS = "pickup_p95_ms"
#: 95th percentile of run time over the last minute, ms; context ``{"queue", "job_type"}``.
DURATION_P95_MS = "duration_p95_ms"

# -- per assessment, at completion -----------------------------------------------------------

#: Submission → completed/failed, ms.
ASSESSMENT_E2E_MS = "assessment_e2e_ms"
#: LLM cost of grading its essays, cents.
ASSESSMENT_LLM_COST_CENTS = "assessment_llm_cost_cents"
#: LLM tokens (prompt + completion) spent on it.
ASSESSMENT_LLM_TOKENS = "assessment_llm_tokens"
