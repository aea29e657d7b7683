"""A workload for the running stack, through its front doors.

- :func:`prepare_workload`: an admin and N submitter clients (keys issued as
  ``gradeflow clients create`` does), a role with multiple-choice, profile and
  essay questions (over HTTP), a credential catalog (``gradeflow catalog load``,
  embedded by the workers), and for each client a webhook endpoint (over HTTP)
  with a verifying receiver on loopback holding its secret;
- :class:`Submitter`: assessments posted concurrently over HTTP, all at once
  (closed loop) or at a fixed rate (open loop, each timed from when it was
  due), each with an ``Idempotency-Key`` and retried while the API is down;
- :func:`wait_settled`: until every assessment is terminal, no job of theirs is
  queued or running and no event of theirs is pending.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from gradeflow.api.keys import issue_api_key
from gradeflow.db.clients import insert_client
from gradeflow.db.engine import transaction
from gradeflow.jobs.webhooks.events import EVENT_TYPES
from gradeflow.ops.bench_support import BenchError, gradeflow_argv, wait_until
from gradeflow.ops.e2e.stack import E2EStack
from gradeflow.ops.fakes.webhook_receiver import Receiver

SKILLS = ("sql", "statistics", "python", "modeling", "visualization")
PROVIDERS = ("Example Academy", "Data Institute", "Open Courseware")
HTTP_TIMEOUT_SECONDS = 30.0
#: Backoff bounds of a submission retried while the API is unavailable.
RETRY_WAIT_SECONDS = (0.2, 2.0)
SETTLE_POLL_SECONDS = 0.5

# -- the workload --------------------------------------------------------------------------


@dataclass(frozen=True)
class Tenant:
    """A submitter client: its key, and its webhook endpoint's receiver and secret."""

    name: str
    client_id: uuid.UUID
    api_key: str
    receiver: Receiver
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.api_key)


@dataclass(frozen=True)
class Questions:
    role_id: str
    multiple_choice: tuple[str, ...]
    profile: str
    essay: str

    @property
    def count(self) -> int:
        return len(self.multiple_choice) + 2


@dataclass
class Workload:
    admin_key: str
    questions: Questions
    tenants: list[Tenant]
    credentials: int

    def secrets(self) -> dict[str, str]:
        """What must never reach a log, by what it is."""
        found = {"admin api key": self.admin_key}
        for tenant in self.tenants:
            found[f"api key of {tenant.name}"] = tenant.api_key
            found[f"webhook secret of {tenant.name}"] = tenant.secret
        return found

    def close(self) -> None:
        for tenant in self.tenants:
            tenant.receiver.stop()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def issue_client(engine: Engine, name: str, role: str) -> tuple[uuid.UUID, str]:
    """A client and its key, written as ``gradeflow clients create`` writes them."""
    issued = issue_api_key()
    with transaction(engine) as session:
        client = insert_client(
            session, name=name, role=role, key_hash=issued.key_hash, key_prefix=issued.key_prefix
        )
    return client.id, issued.key


def posted(http: httpx.Client, path: str, body: Any, headers: dict[str, str]) -> Any:
    response = http.post(path, json=body, headers=headers)
    if response.status_code not in (200, 201, 202):
        raise BenchError(f"POST {path} answered {response.status_code}: {response.text[:300]}")
    return response.json()


ROLE = {
    "name": "Data analyst",
    "description": "Reads data, writes SQL, explains results.",
    "skills_profile": {"sql": 80, "statistics": 70, "python": 60},
}
CHOICE_QUESTIONS = (
    ("Which statement reads rows?", "sql"),
    ("Which measure resists outliers?", "statistics"),
)
ESSAY_RUBRIC = {
    "skills": ["sql"],
    "criteria": [
        {
            "name": "accuracy",
            "description": "Explains how an index speeds up lookups.",
            "levels": [
                {"score": 0, "descriptor": "Wrong or missing."},
                {"score": 5, "descriptor": "Names the b-tree and sorted keys."},
            ],
            "keywords": ["b-tree", "sorted"],
        },
        {
            "name": "tradeoffs",
            "description": "Discusses the cost of an index.",
            "levels": [
                {"score": 0, "descriptor": "No costs."},
                {"score": 3, "descriptor": "Write and storage overhead."},
            ],
        },
    ],
}


def choice_question(role_id: str, prompt: str, skill: str) -> dict[str, Any]:
    return {
        "role_id": role_id,
        "question_type": "multiple_choice",
        "prompt": prompt,
        "choices": [{"id": c, "text": f"choice {c}"} for c in "abc"],
        "rubric": {
            "correct": ["a"],
            "multi_select": False,
            "negative_marking": 0,
            "skills": [skill],
        },
        "weight": 1,
        "version": "1",
    }


def profile_question(role_id: str) -> dict[str, Any]:
    return {
        "role_id": role_id,
        "question_type": "profile",
        "prompt": "How much Python do you write?",
        "choices": [{"id": level, "text": level.title()} for level in ("none", "weekly", "daily")],
        "rubric": {"skill": "python", "mapping": {"none": 0, "weekly": 50, "daily": 90}},
        "weight": 1,
        "version": "1",
    }


def essay_question(role_id: str) -> dict[str, Any]:
    return {
        "role_id": role_id,
        "question_type": "essay",
        "prompt": "Explain how an index speeds up a query, and what it costs.",
        "rubric": ESSAY_RUBRIC,
        "weight": 2,
        "version": "1",
    }


def create_questions(http: httpx.Client, admin: dict[str, str]) -> Questions:
    """A role weighing three skills, and its questions (two multiple choice, one profile,
    one essay), each tagged with the skill it measures."""
    role = posted(http, "/v1/roles", ROLE, admin)["id"]

    def create(body: dict[str, Any]) -> str:
        return str(posted(http, "/v1/questions", body, admin)["id"])

    choices = tuple(
        create(choice_question(role, prompt, skill)) for prompt, skill in CHOICE_QUESTIONS
    )
    return Questions(role, choices, create(profile_question(role)), create(essay_question(role)))


def catalog_lines(count: int) -> list[str]:
    """``count`` credentials as JSON Lines, covering every skill."""
    lines = []
    for number in range(count):
        skills = [SKILLS[number % len(SKILLS)], SKILLS[(number * 3 + 1) % len(SKILLS)]]
        credential = {
            "title": f"{skills[0].title()} practitioner certificate {number}",
            "description": f"Hands-on {skills[0]} and {skills[1]} for analysts, "
            f"level {number % 3 + 1}.",
            "skills": sorted(set(skills)),
            "provider": PROVIDERS[number % len(PROVIDERS)],
            "metadata": {"hours": 10 + number},
        }
        lines.append(json.dumps(credential))
    return lines


def load_catalog(stack: E2EStack, count: int) -> None:
    """``gradeflow catalog load`` of ``count`` credentials; their embed jobs are queued."""
    path = stack.work_dir / "catalog.jsonl"
    path.write_text("\n".join(catalog_lines(count)) + "\n")
    with (stack.work_dir / "catalog-load.log").open("ab") as log:
        done = subprocess.run(
            gradeflow_argv("catalog", "load", str(path)), env=stack.env, cwd=stack.work_dir,
            stdout=log, stderr=subprocess.STDOUT, timeout=300, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"gradeflow catalog load failed; see {stack.work_dir}/catalog-load.log")


def add_tenant(engine: Engine, http: httpx.Client, name: str) -> Tenant:
    """A submitter client with an endpoint for every event type, and its receiver."""
    client_id, key = issue_client(engine, name, "submitter")
    receiver = Receiver([])
    port = receiver.start()
    try:
        endpoint = posted(
            http, "/v1/webhook-endpoints",
            {"url": f"http://127.0.0.1:{port}/hooks/{name}", "event_types": list(EVENT_TYPES)},
            bearer(key),
        )  # fmt: skip
    except BaseException:
        receiver.stop()
        raise
    receiver.secrets.append(endpoint["secret"])
    return Tenant(name, client_id, key, receiver, endpoint["secret"])


def idle(engine: Engine) -> bool:
    """No job queued or running (a dead one is an error)."""
    with engine.connect() as conn:
        counts: dict[str, int] = dict(
            conn.execute(text("SELECT status, count(*) FROM async_jobs GROUP BY status")).all()
        )
    if counts.get("dead"):
        raise BenchError(f"jobs died while the workload was prepared: {counts}")
    return not counts.get("queued") and not counts.get("running")


def prepare_workload(
    stack: E2EStack, engine: Engine, *, clients: int, credentials: int
) -> Workload:
    """Everything the submissions need, in place and embedded (the receivers of a
    workload that could not be prepared are stopped)."""
    _, admin_key = issue_client(engine, "e2e-admin", "admin")
    with httpx.Client(base_url=stack.api_url, timeout=HTTP_TIMEOUT_SECONDS) as http:
        workload = Workload(admin_key, create_questions(http, bearer(admin_key)), [], credentials)
        try:
            load_catalog(stack, credentials)
            for number in range(clients):
                workload.tenants.append(add_tenant(engine, http, f"tenant-{number}"))
            wait_until(
                lambda: idle(engine), 300, "the catalog to be embedded", stack.check_alive,
                SETTLE_POLL_SECONDS,
            )  # fmt: skip
        except BaseException:
            workload.close()
            raise
    return workload


# -- submissions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    tenant: Tenant
    key: str
    body: dict[str, Any]
    #: The essay's text, and a marker it starts with (what a log scan looks for).
    essay: str
    marker: str


def essay_text(marker: str, number: int) -> str:
    quality = (
        "An index keeps sorted keys in a b-tree, so a lookup reads a few pages instead of "
        "the whole table; every write must also update the index, which costs time and disk."
        if number % 3
        else "Indexes make queries faster because the database remembers things."
    )
    return f"{marker}: {quality} Answer {number}."


def make_submissions(workload: Workload, count: int, label: str) -> list[Submission]:
    """``count`` assessments spread over the tenants, each user and essay its own."""
    q = workload.questions
    made = []
    for number in range(count):
        tenant = workload.tenants[number % len(workload.tenants)]
        marker = f"essay-{secrets.token_hex(8)}"
        essay = essay_text(marker, number)
        user = f"{label}-{number}-{secrets.token_hex(3)}"
        body = {
            "user": {"external_id": user, "email": f"{user}@example.com"},
            "role_id": q.role_id,
            "responses": [
                {"question_id": q.multiple_choice[0], "answer": "a" if number % 2 else "b"},
                {"question_id": q.multiple_choice[1], "answer": "a" if number % 5 else "c"},
                {"question_id": q.profile, "answer": ("none", "weekly", "daily")[number % 3]},
                {"question_id": q.essay, "answer": essay},
            ],
            "metadata": {"run": label, "number": number},
        }
        made.append(Submission(tenant, f"{label}-{number}", body, essay, marker))
    return made


@dataclass(frozen=True)
class Accepted:
    submission: Submission
    assessment_id: uuid.UUID
    #: When it was due to be sent (``time.time()``): latencies count from here.
    due_at: float
    #: HTTP requests it took (more than one while the API was unavailable).
    tries: int


@dataclass
class SubmitReport:
    accepted: list[Accepted] = field(default_factory=list)
    refused: list[tuple[Submission, str]] = field(default_factory=list)
    #: Requests that failed and were tried again (connection errors, 5xx).
    retried_requests: int = 0

    @property
    def ids(self) -> list[uuid.UUID]:
        return [a.assessment_id for a in self.accepted]


class Submitter:
    """Posts submissions with ``concurrency`` requests in flight at most."""

    def __init__(self, api_url: str, concurrency: int, give_up_seconds: float = 180.0) -> None:
        self.api_url = api_url
        self.concurrency = concurrency
        self.give_up_seconds = give_up_seconds
        self._lock = threading.Lock()

    def run(self, submissions: Sequence[Submission], rate: float | None = None) -> SubmitReport:
        """All at once (``rate`` None), or one every ``1 / rate`` seconds."""
        report = SubmitReport()
        limits = httpx.Limits(max_connections=self.concurrency)
        with (
            httpx.Client(
                base_url=self.api_url, timeout=HTTP_TIMEOUT_SECONDS, limits=limits
            ) as http,
            ThreadPoolExecutor(self.concurrency, thread_name_prefix="submit") as pool,
        ):
            start = time.time() + 0.1
            for number, submission in enumerate(submissions):
                due = start + number / rate if rate else None
                pool.submit(self.submit_one, http, submission, due, report)
        return report

    def submit_one(
        self, http: httpx.Client, submission: Submission, due: float | None, report: SubmitReport
    ) -> None:
        if due is not None:
            time.sleep(max(0.0, due - time.time()))
        due_at = due if due is not None else time.time()
        try:
            tries, outcome = self.post(http, submission)
        except Exception as exc:  # a worker thread's failure must not vanish with it
            tries, outcome = 1, f"the submission failed: {exc!r}"
        with self._lock:
            report.retried_requests += tries - 1
            if isinstance(outcome, uuid.UUID):
                report.accepted.append(Accepted(submission, outcome, due_at, tries))
            else:
                report.refused.append((submission, outcome))

    def post(self, http: httpx.Client, submission: Submission) -> tuple[int, uuid.UUID | str]:
        """POST until accepted or refused; retry what says "not now". Returns the number
        of requests and the assessment's id, or why it was refused."""
        deadline = time.monotonic() + self.give_up_seconds
        headers = {**submission.tenant.headers, "Idempotency-Key": submission.key}
        tries, wait = 0, RETRY_WAIT_SECONDS[0]
        while True:
            tries += 1
            problem = ""
            try:
                response = http.post("/v1/assessments", json=submission.body, headers=headers)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 202:
                    return tries, uuid.UUID(response.json()["id"])
                problem = f"{response.status_code} {response.text[:200]}"
                if response.status_code < 500 and response.status_code != 429:
                    return tries, problem
            if time.monotonic() > deadline:
                return tries, f"gave up after {tries} tries: {problem}"
            time.sleep(wait)
            wait = min(wait * 2, RETRY_WAIT_SECONDS[1])


# -- waiting -------------------------------------------------------------------------------


def unsettled(engine: Engine, ids: Sequence[uuid.UUID]) -> dict[str, int]:
    """What of these assessments is still moving: non-terminal assessments, their jobs
    queued or running, their events pending."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT"
                " (SELECT count(*) FROM assessments WHERE id = ANY(:ids)"
                "   AND status NOT IN ('completed', 'failed')),"
                " (SELECT count(*) FROM async_jobs WHERE assessment_id = ANY(:ids)"
                "   AND status IN ('queued', 'running')),"
                " (SELECT count(*) FROM webhook_events WHERE assessment_id = ANY(:ids)"
                "   AND status = 'pending')"
            ),
            {"ids": list(ids)},
        ).one()
    return {"assessments": row[0], "jobs": row[1], "events": row[2]}


def wait_settled(
    engine: Engine,
    ids: Sequence[uuid.UUID],
    timeout: float,
    check: Callable[[], None] = lambda: None,
) -> float:
    """Wait until nothing of ``ids`` is moving; return when that was seen (``time.time()``).
    A database that is away (restarting) counts as "still moving"."""
    last: dict[str, int] = {}

    def settled() -> bool:
        try:
            last.update(unsettled(engine, ids))
        except OperationalError:
            return False
        return not any(last.values())

    try:
        wait_until(settled, timeout, "the assessments to settle", check, SETTLE_POLL_SECONDS)
    except BenchError as exc:
        raise BenchError(f"{exc}; still moving: {last}") from None
    return time.time()


def submit_and_settle(
    stack: E2EStack,
    engine: Engine,
    submissions: Sequence[Submission],
    *,
    concurrency: int,
    timeout: float,
    rate: float | None = None,
) -> SubmitReport:
    """Submit everything (all at once, or at ``rate`` per second), every one accepted,
    then wait until the assessments settle."""
    report = Submitter(stack.api_url, concurrency).run(submissions, rate)
    if report.refused:
        submission, why = report.refused[0]
        raise BenchError(f"{len(report.refused)} submissions refused, e.g. {submission.key}: {why}")
    wait_settled(engine, report.ids, timeout, stack.check_alive)
    return report
