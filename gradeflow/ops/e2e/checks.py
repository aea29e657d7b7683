"""What must hold after a run, read from PostgreSQL and from the receivers.

:func:`check_run` returns the figures of a run and every problem found, each
a sentence; a run is good when there are none:

- every accepted assessment is in the database and terminal (``completed``,
  unless a chaos run accepts ``failed`` too), none lost;
- every completed assessment has exactly one score row per question, and one
  recommendation (``ready`` with at least one item, unless a chaos run accepts
  ``failed``); no result row twice;
- no job of the run is left ``queued`` or ``running``;
- every event is ``delivered``, and its receiver got it at least once, every
  copy signed with the endpoint's secret and with the same body under the same
  ``webhook-id`` (so exactly once after the receiver's de-duplication);
- every completed assessment sent ``assessment.completed`` (and, its recommendation
  ready, ``recommendation.ready``) to its client's endpoint, once.

:func:`leaks` looks for keys, secrets and essays in the processes' logs.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text

from gradeflow.jobs.webhooks.signing import message_id
from gradeflow.ops.e2e.stack import E2EStack
from gradeflow.ops.e2e.workload import Accepted, Submission, Tenant, Workload
from gradeflow.ops.fakes.webhook_receiver import Received


@dataclass(frozen=True)
class Expectations:
    """How strict the checks are: a chaos run accepts an assessment that failed (its
    rule scoring died) and a recommendation that failed, as long as each is final."""

    all_completed: bool = True
    recommendations_ready: bool = True


@dataclass
class RunCheck:
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def expect(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)


# -- deliveries ----------------------------------------------------------------------------


@dataclass
class Event:
    """One ``webhook_events`` row of the run, and what its receiver got for it."""

    id: uuid.UUID
    assessment_id: uuid.UUID
    event_type: str
    status: str
    tenant: str
    receipts: list[Received] = field(default_factory=list)

    @property
    def webhook_id(self) -> str:
        return message_id(self.id)

    @property
    def first_received_at(self) -> float | None:
        return min((r.at for r in self.receipts), default=None)


def run_events(
    conn: Connection, ids: Sequence[uuid.UUID], tenants: Sequence[Tenant]
) -> list[Event]:
    """The run's events, each with the receipts of its ``webhook-id`` at its tenant."""
    by_client = {tenant.client_id: tenant for tenant in tenants}
    rows = conn.execute(
        text(
            "SELECT e.id, e.assessment_id, e.event_type, e.status, p.client_id"
            " FROM webhook_events e JOIN webhook_endpoints p ON p.id = e.endpoint_id"
            " WHERE e.assessment_id = ANY(:ids)"
        ),
        {"ids": list(ids)},
    ).all()
    events = [
        Event(row[0], row[1], row[2], row[3], by_client[row[4]].name)
        for row in rows
        if row[4] in by_client
    ]
    receipts: dict[tuple[str, str], list[Received]] = defaultdict(list)
    for tenant in tenants:
        for receipt in list(tenant.receiver.received):
            receipts[(tenant.name, receipt.webhook_id)].append(receipt)
    for event in events:
        event.receipts = receipts.get((event.tenant, event.webhook_id), [])
    return events


@dataclass(frozen=True)
class Deliveries:
    """What the receivers got, set against the run's events."""

    delivered: list[Event]
    unstable: list[Event]
    mismatched: list[Event]
    unverified: list[Received]
    unknown: list[Received]
    received: int

    @classmethod
    def of(cls, events: Sequence[Event], tenants: Sequence[Tenant]) -> Deliveries:
        known = {(e.tenant, e.webhook_id) for e in events}
        received = [(t.name, r) for t in tenants for r in list(t.receiver.received)]
        return cls(
            delivered=[e for e in events if any(r.verified[:1] == [True] for r in e.receipts)],
            unstable=[e for e in events if len({r.body for r in e.receipts}) > 1],
            mismatched=[e for e in events if e.receipts and not body_matches(e)],
            unverified=[r for _, r in received if r.verified[:1] != [True]],
            unknown=[r for name, r in received if (name, r.webhook_id) not in known],
            received=len(received),
        )

    @property
    def redeliveries(self) -> int:
        """Copies of an event received after its first (what de-duplication drops)."""
        return self.received - len(self.unknown) - len(self.delivered)


def check_deliveries(check: RunCheck, events: Sequence[Event], tenants: Sequence[Tenant]) -> None:
    got = Deliveries.of(events, tenants)
    not_final = sorted({e.status for e in events if e.status != "delivered"})
    check.figures.update(
        events=len(events),
        events_delivered=len(got.delivered),
        deliveries_received=got.received,
        redeliveries=got.redeliveries,
    )
    missed = len(events) - len(got.delivered)
    check.expect(not missed, f"{missed} events never reached their receiver verified")
    check.expect(not not_final, f"some events ended {not_final}, not delivered")
    check.expect(not got.unverified, f"{len(got.unverified)} deliveries did not verify")
    check.expect(not got.unstable, f"{len(got.unstable)} webhook-ids came with different bodies")
    check.expect(not got.unknown, f"{len(got.unknown)} deliveries name no event of the run")
    check.expect(not got.mismatched, f"{len(got.mismatched)} bodies disagree with their event")


def body_matches(event: Event) -> bool:
    """The body says what the row says: its type, and for ``assessment.*`` its assessment."""
    body = json.loads(event.receipts[0].body)
    if body.get("type") != event.event_type:
        return False
    about = body["data"].get("id") if event.event_type.startswith("assessment.") else None
    return about is None or about == str(event.assessment_id)


def announcements(
    statuses: Mapping[uuid.UUID, str], recommendations: Mapping[uuid.UUID, str]
) -> list[tuple[uuid.UUID, str]]:
    """The events each assessment must have sent: ``assessment.completed`` and, with a
    ready recommendation, ``recommendation.ready``; or ``assessment.failed``."""
    wanted = []
    for assessment_id, status in statuses.items():
        if status == "failed":
            wanted.append((assessment_id, "assessment.failed"))
        elif status == "completed":
            wanted.append((assessment_id, "assessment.completed"))
            if recommendations.get(assessment_id) == "ready":
                wanted.append((assessment_id, "recommendation.ready"))
    return wanted


def check_announcements(
    check: RunCheck, events: Sequence[Event], wanted: Sequence[tuple[uuid.UUID, str]]
) -> None:
    """Each event wanted was emitted once (the run's clients have one endpoint each)."""
    sent: dict[tuple[uuid.UUID, str], int] = defaultdict(int)
    for event in events:
        sent[(event.assessment_id, event.event_type)] += 1
    missing = [key for key in wanted if not sent.get(key)]
    twice = sum(n - 1 for n in sent.values() if n > 1)
    check.figures["duplicate_events"] = twice
    check.expect(not missing, f"{len(missing)} events were never emitted, e.g. {missing[:3]}")
    check.expect(not twice, f"{twice} events were emitted more than once")


# -- results -------------------------------------------------------------------------------


def statuses_of(
    conn: Connection, table: str, key: str, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """``status`` by ``key`` of the rows of ``table`` (assessments, recommendations)."""
    rows = conn.execute(
        text(f"SELECT {key}, status FROM {table} WHERE {key} = ANY(:ids)"), {"ids": list(ids)}
    )
    return {row[0]: row[1] for row in rows}


def check_assessments(
    check: RunCheck,
    conn: Connection,
    statuses: Mapping[uuid.UUID, str],
    accepted: int,
    expect: Expectations,
) -> None:
    counts: dict[str, int] = defaultdict(int)
    for status in statuses.values():
        counts[status] += 1
    terminal = counts["completed"] + counts["failed"]
    degraded = conn.execute(
        text("SELECT count(*) FROM assessments WHERE id = ANY(:ids) AND degraded"),
        {"ids": list(statuses)},
    ).scalar_one()
    check.figures.update(
        completed=counts["completed"], failed=counts["failed"], lost=accepted - terminal,
        degraded=int(degraded),
    )  # fmt: skip
    check.expect(
        len(statuses) == accepted,
        f"{accepted - len(statuses)} accepted assessments are not in the database",
    )
    check.expect(
        terminal == accepted, f"{accepted - terminal} assessments are not terminal: {dict(counts)}"
    )
    if expect.all_completed:
        check.expect(
            counts["completed"] == accepted,
            f"{accepted - counts['completed']} assessments did not complete: {dict(counts)}",
        )


SCORES = """
WITH scored AS (
    SELECT assessment_id, question_snapshot_id FROM rule_scores WHERE assessment_id = ANY(:ids)
    UNION ALL
    SELECT assessment_id, question_snapshot_id FROM essay_scores WHERE assessment_id = ANY(:ids)
), completed AS (
    SELECT id FROM assessments WHERE id = ANY(:ids) AND status = 'completed'
)
SELECT
    (SELECT count(*) FROM (SELECT 1 FROM scored GROUP BY assessment_id, question_snapshot_id
                           HAVING count(*) > 1) AS twice),
    (SELECT count(*) FROM assessment_question_snapshots s JOIN completed c ON c.id = s.assessment_id
     WHERE NOT EXISTS (SELECT 1 FROM scored x WHERE x.question_snapshot_id = s.id)),
    (SELECT count(*) FROM completed c WHERE (SELECT count(*) FROM assessment_question_snapshots s
                                            WHERE s.assessment_id = c.id) <> :questions)
"""

RECOMMENDATIONS = """
SELECT
    count(*) FILTER (WHERE r.id IS NULL),
    count(*) FILTER (WHERE r.status = 'ready'),
    count(*) FILTER (WHERE r.status = 'failed'),
    count(*) FILTER (WHERE r.status = 'ready' AND r.degraded),
    count(*) FILTER (WHERE r.status = 'ready' AND NOT EXISTS (
        SELECT 1 FROM recommendation_items i WHERE i.recommendation_id = r.id)),
    (SELECT count(*) - count(DISTINCT assessment_id) FROM recommendations
     WHERE assessment_id = ANY(:ids)),
    (SELECT count(*) - count(DISTINCT (i.recommendation_id, i.credential_id))
     FROM recommendation_items i JOIN recommendations x ON x.id = i.recommendation_id
     WHERE x.assessment_id = ANY(:ids))
FROM assessments a LEFT JOIN recommendations r ON r.assessment_id = a.id
WHERE a.id = ANY(:ids) AND a.status = 'completed'
"""


def check_scores(
    check: RunCheck, conn: Connection, ids: Sequence[uuid.UUID], questions: int
) -> int:
    twice, unscored, wrong_count = conn.execute(
        text(SCORES), {"ids": list(ids), "questions": questions}
    ).one()
    check.expect(not unscored, f"{unscored} questions of completed assessments have no score")
    check.expect(
        not wrong_count, f"{wrong_count} completed assessments do not have {questions} questions"
    )
    return int(twice)


def check_recommendations(
    check: RunCheck, conn: Connection, ids: Sequence[uuid.UUID], expect: Expectations
) -> int:
    missing, ready, failed, degraded, empty, twice, items_twice = conn.execute(
        text(RECOMMENDATIONS), {"ids": list(ids)}
    ).one()
    check.figures.update(
        recommendations_ready=ready, recommendations_failed=failed,
        recommendations_degraded=degraded,
    )  # fmt: skip
    check.expect(not missing, f"{missing} completed assessments have no recommendation")
    check.expect(not empty, f"{empty} ready recommendations have no item")
    if expect.recommendations_ready:
        check.expect(not failed, f"{failed} recommendations failed")
    pending = check.figures["completed"] - missing - ready - failed
    check.expect(
        not pending, f"{pending} recommendations of completed assessments are still pending"
    )
    return int(twice) + int(items_twice)


# -- jobs ----------------------------------------------------------------------------------


def check_jobs(check: RunCheck, conn: Connection, ids: Sequence[uuid.UUID]) -> None:
    """None left queued or running; the attempts spent beyond one per job (a claim
    counts one; a snooze is refunded), the rescues and the dead, by job type."""
    rows = conn.execute(
        text(
            "SELECT job_type, status, count(*), sum(greatest(attempts - 1, 0)), sum(rescues)"
            " FROM async_jobs WHERE assessment_id = ANY(:ids) GROUP BY job_type, status"
        ),
        {"ids": list(ids)},
    ).all()
    jobs: dict[str, int] = defaultdict(int)
    extra: dict[str, int] = defaultdict(int)
    rescued: dict[str, int] = defaultdict(int)
    dead: dict[str, int] = defaultdict(int)
    left: dict[str, int] = {}
    for kind, status, n, more, rescues in rows:
        jobs[kind] += n
        extra[kind] += int(more)
        rescued[kind] += int(rescues)
        if status == "dead":
            dead[kind] += n
        if status in ("queued", "running"):
            left[f"{kind} {status}"] = n
    webhook_attempts, webhook_events = conn.execute(
        text(
            "SELECT (SELECT count(*) FROM webhook_attempts a JOIN webhook_events e"
            "  ON e.id = a.event_id WHERE e.assessment_id = ANY(:ids)),"
            " (SELECT count(*) FROM webhook_events WHERE assessment_id = ANY(:ids))"
        ),
        {"ids": list(ids)},
    ).one()
    check.figures.update(
        jobs=dict(jobs),
        dead_jobs=dict(dead),
        extra_attempts=dict(extra),
        rescues={kind: n for kind, n in rescued.items() if n},
        extra_delivery_attempts=int(webhook_attempts) - int(webhook_events),
    )
    check.expect(not left, f"jobs left unfinished: {left}")


# -- the whole check -----------------------------------------------------------------------


def check_run(
    engine: Engine,
    accepted: Sequence[Accepted],
    tenants: Sequence[Tenant],
    questions: int,
    *,
    submitted: int,
    expect: Expectations | None = None,
) -> RunCheck:
    """Every check of a run over the ``accepted`` assessments (of ``submitted``)."""
    expect = expect or Expectations()
    ids = [a.assessment_id for a in accepted]
    check = RunCheck(figures={"assessments": submitted, "accepted": len(ids)})
    check.expect(len(ids) == submitted, f"{submitted - len(ids)} submissions were never accepted")
    with engine.connect() as conn:
        statuses = statuses_of(conn, "assessments", "id", ids)
        recommendations = statuses_of(conn, "recommendations", "assessment_id", ids)
        check_assessments(check, conn, statuses, len(ids), expect)
        duplicates = check_scores(check, conn, ids, questions)
        duplicates += check_recommendations(check, conn, ids, expect)
        check_jobs(check, conn, ids)
        events = run_events(conn, ids, tenants)
    check_announcements(check, events, announcements(statuses, recommendations))
    check_deliveries(check, events, tenants)
    duplicates += check.figures["duplicate_events"]
    check.figures["duplicate_rows"] = duplicates
    check.expect(not duplicates, f"{duplicates} result rows exist twice")
    return check


# -- latency -------------------------------------------------------------------------------


def completion_times(
    engine: Engine, accepted: Sequence[Accepted], tenants: Sequence[Tenant]
) -> dict[uuid.UUID, float]:
    """For each assessment: seconds from when its submission was due to the first
    arrival of its ``assessment.completed`` webhook (those that arrived)."""
    due = {a.assessment_id: a.due_at for a in accepted}
    with engine.connect() as conn:
        events = run_events(conn, list(due), tenants)
    return {
        e.assessment_id: arrived - due[e.assessment_id]
        for e in events
        if e.event_type == "assessment.completed" and (arrived := e.first_received_at) is not None
    }


# -- logs ----------------------------------------------------------------------------------


def scan_logs(paths: Iterable[Path], needles: Mapping[str, str]) -> list[str]:
    """Where each of ``needles`` (by what it is) occurs in the files at ``paths``."""
    found: list[str] = []
    for path in paths:
        content = path.read_text(errors="replace")
        found.extend(
            f"{what} found in {path.name}" for what, needle in needles.items() if needle in content
        )
    return found


def leaks(stack: E2EStack, workload: Workload, submissions: Sequence[Submission]) -> list[str]:
    """Every API key, webhook secret, the LLM's key and every essay submitted (and the
    marker each essay starts with, should a log hold part of one) found in a log of
    the stack's processes (and of ``gradeflow catalog load``)."""
    needles = {
        **workload.secrets(),
        "the OpenAI API key": stack.env["OPENAI_API_KEY"],
        **{f"essay {s.key}": s.essay for s in submissions},
        **{f"the marker of essay {s.key}": s.marker for s in submissions},
    }
    return scan_logs(stack.logs(), needles)
