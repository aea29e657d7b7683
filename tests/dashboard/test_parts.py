"""The dashboard's pure parts: session signing, the origin and redirect checks, a job's
timeline, the overview's figures and the formatting of durations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.requests import Request

from gradeflow.db.dashboard import AuditEvent, QueueLoad, SeriesPoint
from gradeflow.db.jobs import JobDetail, JobRow
from gradeflow.ops.dashboard import views
from gradeflow.ops.dashboard.sessions import (
    SessionData,
    Signer,
    csrf_matches,
    safe_next,
    same_origin,
    shared_secret,
)
from tests.dashboard.seeds import failures

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_a_session_cookie_round_trips_and_refuses_tampering_and_other_secrets() -> None:
    signer = Signer("secret-one", 3600)
    data = SessionData(client_id=str(uuid.uuid4()), csrf="token")
    cookie = signer.dumps(data)
    assert signer.loads(cookie) == data
    assert signer.loads(cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")) is None
    assert Signer("secret-two", 3600).loads(cookie) is None
    assert signer.loads("not a cookie") is None


def test_an_expired_session_is_refused() -> None:
    assert Signer("s", -1).loads(Signer("s", 3600).dumps(SessionData("c", "t"))) is None


def test_the_shared_secret_is_made_once_private_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "home" / "dashboard-secret"
    first = shared_secret(path)
    assert len(first) >= 48 and shared_secret(path) == first
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["dashboard-secret"]


def test_csrf_tokens_compare_exactly() -> None:
    assert csrf_matches("abc", "abc")
    assert not csrf_matches("abc", "abd")
    assert not csrf_matches("abc", None)
    assert not csrf_matches("abc", "")


def request_with(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "path": "/ops/jobs/x/retry",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), *raw],
    }
    return Request(scope)


@pytest.mark.parametrize(
    ("headers", "same"),
    [
        ({"Origin": "http://127.0.0.1:8000"}, True),
        ({"Referer": "http://127.0.0.1:8000/ops/jobs"}, True),
        ({"Origin": "http://127.0.0.1:8001"}, False),
        ({"Origin": "https://127.0.0.1:8000"}, False),
        ({"Origin": "http://evil.example"}, False),
        ({"Origin": "null"}, False),
        ({"Origin": "http://evil.example", "Referer": "http://127.0.0.1:8000/ops"}, False),
        ({}, False),
    ],
)
def test_only_posts_from_the_dashboards_own_origin_pass(
    headers: dict[str, str], same: bool
) -> None:
    assert same_origin(request_with(headers)) is same


@pytest.mark.parametrize(
    ("target", "landing"),
    [
        ("/ops/jobs?status=dead", "/ops/jobs?status=dead"),
        ("", "/ops"),
        ("https://evil.example/ops", "/ops"),
        ("//evil.example/ops", "/ops"),
        ("/ops\\@evil.example", "/ops"),
        ("/v1/jobs", "/ops"),
    ],
)
def test_after_login_only_dashboard_paths_are_followed(target: str, landing: str) -> None:
    assert safe_next(target) == landing


def detail(status: str, errors: list[dict[str, object]], **times: datetime | None) -> JobDetail:
    row = JobRow(
        id=uuid.uuid4(), job_type="score_rules", queue_name="cpu", status=status, attempts=1,
        max_attempts=None, client_id=None, assessment_id=None,
        queued_at=times.get("queued_at") or NOW - timedelta(hours=1),
        started_at=times.get("started_at"), next_run_at=times.get("next_run_at"),
        completed_at=times.get("completed_at"), last_error=None,
    )  # fmt: skip
    return JobDetail(row, {}, errors, None, None, 0, None)


def test_a_retried_jobs_timeline_tells_its_story_in_order() -> None:
    errors = failures(2, now=NOW - timedelta(minutes=5))
    retried = AuditEvent(NOW - timedelta(seconds=30), "job.retry", "operator", "ops-desk", {})
    job = detail(
        "succeeded", errors,
        queued_at=NOW - timedelta(hours=1),
        started_at=NOW - timedelta(seconds=20),
        completed_at=NOW - timedelta(seconds=19),
    )  # fmt: skip
    entries = views.job_timeline(job, [retried])
    kinds = [entry.kind for entry in entries]
    assert kinds == ["queued", "failed", "failed", "operator", "started", "finished"]
    assert entries[1].text.startswith("attempt 1 failed: ConnectionError: upstream answered")
    assert entries[3].text == "retry by ops-desk (operator)"
    assert entries[-1].text == "succeeded"


def test_a_waiting_jobs_timeline_ends_with_when_it_is_due_and_skips_undated_errors() -> None:
    job = detail("queued", [{"attempt": 1, "message": "no time"}], next_run_at=NOW)
    assert [e.kind for e in views.job_timeline(job, [])] == ["queued", "due"]


def test_the_overview_adds_up_and_divides_only_what_it_can() -> None:
    loads = [
        QueueLoad("cpu", "score_rules", 3, 1, 0, 12.0, 9, 1),
        QueueLoad("llm", "score_essay", 0, 0, 2, None, 0, 0),
    ]
    series = {"depth": [SeriesPoint(NOW, "cpu", 4.0), SeriesPoint(NOW, "llm", 1.0)]}
    payload = views.overview_payload(loads, series, NOW, 60)
    assert payload["totals"] == {
        "queued": 3, "running": 1, "dead": 2, "oldest_queued_s": 12.0,
        "throughput_1h": 9, "failure_rate_1h": 0.1,
    }  # fmt: skip
    assert [row["failure_rate_1h"] for row in payload["rows"]] == [0.1, None]
    depth = next(chart for chart in payload["charts"] if chart["key"] == "depth")
    assert [line["queue"] for line in depth["lines"]] == ["cpu", "llm"]
    assert depth["lines"][0]["points"] == [[NOW.timestamp() * 1000, 4.0]]
    assert all(chart["lines"] == [] for chart in payload["charts"] if chart["key"] != "depth")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "—"), (0, "0s"), (42.7, "42s"), (61, "1m 1s"), (3725, "1h 2m"), (200_000, "2d 7h")],
)
def test_durations_read_like_an_operator_would_say_them(seconds: float | None, text: str) -> None:
    assert views.duration(seconds) == text


def test_who_may_do_what_follows_the_state_machine() -> None:
    every = ("queued", "running", "succeeded", "dead", "cancelled")
    assert [s for s in every if views.may_retry(s)] == ["dead", "cancelled"]
    assert [s for s in every if views.may_cancel(s)] == ["queued", "running"]
