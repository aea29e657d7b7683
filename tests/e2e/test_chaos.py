"""The chaos run of ``gradeflow bench chaos``, shorter: each fault strikes once.

The whole stack runs on a PostgreSQL and a Redis of the test's own (it
restarts them); 60 assessments from three clients are submitted at a steady
rate while a worker group is SIGKILLed, the LLM answers 30 % 500s, 10 %
timeouts, 10 % malformed JSON and a burst of 429s, the webhook receivers go
down for a few seconds, Redis is flushed and restarted, and PostgreSQL is
restarted. Afterwards nothing may be lost or doubled, and every event must have
arrived, verified, under a single ``webhook-id``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gradeflow.ops.bench_chaos import ChaosPlan, run_chaos

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

#: 20 s of submissions; the faults spread over them so that each strikes under load.
PLAN = ChaosPlan(
    assessments=60,
    clients=3,
    rate=3.0,
    concurrency=6,
    credentials=30,
    burst_at=0.1,
    burst_size=10,
    receivers_at=0.3,
    receivers_down_seconds=6.0,
    redis_at=0.6,
    postgres_at=0.7,
    kill_every_seconds=16.0,
    kills=1,
    # Short leases and backoffs keep the test quick; the bench runs the defaults.
    env={
        "GRADEFLOW_LEASE_SECONDS": "5",
        "GRADEFLOW_HEARTBEAT_SECONDS": "1.5",
        "GRADEFLOW_RETRY_BASE_SECONDS": "0.5",
    },
)


def test_nothing_is_lost_or_doubled_while_everything_breaks_once(tmp_path: Path) -> None:
    result = run_chaos(PLAN, tmp_path)

    assert result["problems"] == [], result
    assert result["leaks"] == [], "a log carries a key, a secret or an essay"
    assert result["accepted"] == PLAN.assessments
    assert result["completed"] + result["failed"] == PLAN.assessments
    assert result["lost"] == 0 and result["duplicate_rows"] == 0
    assert result["events"] == result["events_delivered"] > 0
    faults = {fault["fault"]: fault for fault in result["faults"]}
    assert set(faults) == {
        "worker-llm SIGKILLed",
        f"LLM 429 burst ({PLAN.burst_size} calls)",
        "webhook receivers down",
        "Redis flushed and restarted",
        "PostgreSQL restarted",
    }
    assert all(fault["recovery_s"] is not None for fault in faults.values()), faults
    # Every kind of LLM failure was served, the burst in full.
    answers = result["llm_answers"]
    assert answers["status"] and answers["timeout"] and answers["malformed"], answers
    assert answers["rate_limit"] == PLAN.burst_size
    # The failures cost attempts; the LLM's were retried, not given up on at once.
    assert result["extra_attempts"]["score_essay"] > 0
