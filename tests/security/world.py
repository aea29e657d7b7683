"""Two submitter clients, each owning one of everything, seeded through the real API
(rows inserted directly only where no endpoint makes them: recommendations, webhook
events, jobs in a given state), and what the security tests read back.

Client A makes the requests under test; client B's data must never appear in an answer
A gets. :meth:`Tenant.markers` is everything that identifies B's data.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, text

from gradeflow.db.clients import revoke_client
from gradeflow.db.engine import transaction
from gradeflow.db.webhooks import insert_endpoint
from gradeflow.jobs.enqueue import insert_new_jobs
from gradeflow.jobs.webhooks import emit_event
from gradeflow.jobs.webhooks.signing import message_id, new_secret
from tests.integration.api_helpers import (
    Key,
    add_client,
    essay_body,
    multiple_choice_body,
    role_body,
)
from tests.integration.test_api_assessments import add_recommendation

#: A public address the SSRF guard accepts at registration (nothing is delivered here).
PUBLIC_HOOK = "https://93.184.216.34/hooks"
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Answer(Protocol):
    """An HTTP answer as the test client gives it (an httpx or httpx2 ``Response``)."""

    @property
    def status_code(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def is_redirect(self) -> bool: ...
    @property
    def request(self) -> Any: ...
    def json(self) -> Any: ...


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Catalog:
    role_id: str
    mc_id: str
    essay_id: str

    def submission(self, external_id: str, email: str, essay: str) -> dict[str, Any]:
        return {
            "user": {"external_id": external_id, "email": email},
            "role_id": self.role_id,
            "responses": [
                {"question_id": self.mc_id, "answer": "a"},
                {"question_id": self.essay_id, "answer": essay},
            ],
            "metadata": {"cohort": unique("cohort")},
        }

    def fresh_submission(self) -> dict[str, Any]:
        name = unique("user")
        return self.submission(name, f"{name}@example.com", "A b-tree keeps keys sorted.")


@dataclass(frozen=True)
class Tenant:
    """A submitter client and one of each resource it owns (ids as the API writes them)."""

    key: Key
    submission: dict[str, Any]
    idempotency_key: str
    assessment_id: str
    user_id: str
    recommendation_id: str
    endpoint_id: str
    endpoint_url: str
    endpoint_secret: str
    event_id: str

    @property
    def client_id(self) -> str:
        return str(self.key.client_id)

    def markers(self, engine: Engine) -> set[str]:
        """Every value that identifies this client's data: ids of every row it owns,
        its key, its user's email and external id, its answers, its URL and secret."""
        user = self.submission["user"]
        essay = self.submission["responses"][1]["answer"]
        known = {
            self.client_id,
            self.key.key,
            user["email"],
            user["external_id"],
            essay,
            self.submission["metadata"]["cohort"],
            self.idempotency_key,
            self.endpoint_url,
            self.endpoint_secret,
            message_id(uuid.UUID(self.event_id)),
        }
        return known | owned_ids(engine, self.client_id)


def ghost_of(tenant: Tenant) -> Tenant:
    """``tenant`` with every id replaced by one that names nothing."""
    fresh = {
        name: str(uuid.uuid4())
        for name in ("assessment_id", "user_id", "recommendation_id", "endpoint_id", "event_id")
    }
    return Tenant(
        key=tenant.key,
        submission=tenant.submission,
        idempotency_key=unique("ghost"),
        endpoint_url=tenant.endpoint_url,
        endpoint_secret=tenant.endpoint_secret,
        **fresh,
    )


#: The ids of every row a client owns, table by table.
OWNED_IDS_SQL = """
WITH a AS (SELECT id FROM assessments WHERE client_id = :client),
     r AS (SELECT id FROM recommendations WHERE assessment_id IN (SELECT id FROM a)),
     e AS (SELECT id FROM webhook_endpoints WHERE client_id = :client)
SELECT id::text FROM a
UNION ALL SELECT id::text FROM users WHERE client_id = :client
UNION ALL SELECT id::text FROM assessment_question_snapshots s WHERE s.assessment_id IN (TABLE a)
UNION ALL SELECT id::text FROM assessment_responses x WHERE x.assessment_id IN (TABLE a)
UNION ALL SELECT id::text FROM r
UNION ALL SELECT id::text FROM recommendation_items i WHERE i.recommendation_id IN (TABLE r)
UNION ALL SELECT id::text FROM rag_traces t WHERE t.recommendation_id IN (TABLE r)
UNION ALL SELECT id::text FROM e
UNION ALL SELECT id::text FROM webhook_events v WHERE v.endpoint_id IN (TABLE e)
UNION ALL SELECT id::text FROM async_jobs WHERE client_id = :client
"""


def owned_ids(engine: Engine, client_id: str) -> set[str]:
    with engine.connect() as conn:
        return {row[0] for row in conn.execute(text(OWNED_IDS_SQL), {"client": client_id})}


@dataclass
class World:
    engine: Engine
    catalog: Catalog
    admin: Key
    operator: Key
    a: Tenant
    b: Tenant

    def key_of(self, role: str) -> Key:
        """The key the role cases send: client A for submitters."""
        return {"submitter": self.a.key, "operator": self.operator, "admin": self.admin}[role]

    def revoked_key(self, role: str) -> Key:
        """The key of a new client of ``role``, revoked."""
        key = add_client(self.engine, role, unique(f"revoked-{role}"))
        with transaction(self.engine) as session:
            assert revoke_client(session, key.client_id) is not None
        return key

    def endpoint(self, owner: Tenant) -> str:
        """A new webhook endpoint of ``owner`` (for requests that delete one)."""
        url = f"{PUBLIC_HOOK}/{unique('spare')}"
        with self.engine.begin() as conn:
            record = insert_endpoint(
                conn, owner.key.client_id, url, ["assessment.failed"], new_secret()
            )
        return str(record.id)

    def job(self, status: str, client_id: str) -> str:
        """A new ``async_jobs`` row in ``status`` (a probe type no worker runs)."""
        finished = status in ("succeeded", "dead", "cancelled")
        with self.engine.begin() as conn:
            job_id = conn.execute(
                text(
                    "INSERT INTO async_jobs (job_type, queue_name, status, payload, client_id,"
                    " next_run_at, sent_at, completed_at) VALUES ('security.probe', 'cpu',"
                    " :status, '{}', :client, now(), now(), CASE WHEN :finished THEN now() END)"
                    " RETURNING id"
                ),
                {"status": status, "client": client_id, "finished": finished},
            ).scalar_one()
        return str(job_id)


def seed_world(http: TestClient, engine: Engine) -> World:
    admin = add_client(engine, "admin")
    catalog = seed_catalog(http, admin)
    return World(
        engine=engine,
        catalog=catalog,
        admin=admin,
        operator=add_client(engine, "operator"),
        a=seed_tenant(http, engine, catalog, "tenant-a"),
        b=seed_tenant(http, engine, catalog, "tenant-b"),
    )


def created(response: Answer, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def seed_catalog(http: TestClient, admin: Key) -> Catalog:
    def post(path: str, body: dict[str, Any]) -> str:
        return str(created(http.post(path, json=body, headers=admin.headers))["id"])

    role_id = post("/v1/roles", role_body(name=unique("role")))
    return Catalog(
        role_id=role_id,
        mc_id=post("/v1/questions", multiple_choice_body(role_id)),
        essay_id=post("/v1/questions", essay_body(role_id)),
    )


def seed_tenant(http: TestClient, engine: Engine, catalog: Catalog, name: str) -> Tenant:
    """A submitter with an assessment (submitted with an Idempotency-Key), a ready
    recommendation, a webhook endpoint and one pending event on it."""
    key = add_client(engine, "submitter", unique(name))
    person = unique(f"{name}-user")
    submission = catalog.submission(
        person, f"{person}@example.com", f"{unique(name + '-essay')}: an index is a b-tree."
    )
    idempotency_key = unique(f"{name}-submission")
    assessment = created(
        http.post(
            "/v1/assessments",
            json=submission,
            headers={**key.headers, "Idempotency-Key": idempotency_key},
        ),
        202,
    )
    url = f"{PUBLIC_HOOK}/{unique(name)}"
    endpoint = created(
        http.post(
            "/v1/webhook-endpoints",
            json={"url": url, "event_types": ["assessment.completed"]},
            headers=key.headers,
        )
    )
    with engine.begin() as conn:
        event_id = emit_completed(conn, key.client_id, assessment)
    return Tenant(
        key=key,
        submission=submission,
        idempotency_key=idempotency_key,
        assessment_id=assessment["id"],
        user_id=assessment["user"]["id"],
        recommendation_id=str(add_recommendation(engine, assessment["id"])),
        endpoint_id=endpoint["id"],
        endpoint_url=url,
        endpoint_secret=endpoint["secret"],
        event_id=event_id,
    )


def emit_completed(conn: Connection, client_id: uuid.UUID, assessment: dict[str, Any]) -> str:
    """An ``assessment.completed`` event for the client's endpoint, with its delivery job
    (no message is sent: nothing delivers it)."""
    jobs = emit_event(
        conn,
        client_id,
        "assessment.completed",
        assessment,
        assessment_id=uuid.UUID(assessment["id"]),
    )
    insert_new_jobs(conn, jobs, window=500)
    [job] = jobs
    return str(job.payload["event_id"])


# -- reading the database back ---------------------------------------------------------


def table_names(conn: Connection) -> list[str]:
    return list(
        conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        ).scalars()
    )


def fingerprint(engine: Engine) -> dict[str, str]:
    """A digest of every row of every table: equal fingerprints, nothing was written."""
    with engine.connect() as conn:
        return {
            table: conn.execute(
                text(
                    "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
                    f' FROM "{table}" t'
                )
            ).scalar_one()
            for table in table_names(conn)
        }


def changed_tables(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(t for t in before.keys() | after.keys() if before.get(t) != after.get(t))


# -- what a request sent and what its answer shows ---------------------------------------


@dataclass(frozen=True)
class Call:
    """One request, without its credentials."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    form: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, http: TestClient, credentials: dict[str, str]) -> Answer:
        return http.request(
            self.method,
            self.path,
            params=self.params,
            json=self.json,
            data=self.form,
            headers={**self.headers, **credentials},
        )

    def sent_text(self) -> str:
        """Everything the caller put in the request: what an answer may echo back."""
        parts = [self.path, self.params, self.json, self.form, self.headers]
        return json.dumps(parts, default=str)


def answer_text(response: Answer) -> str:
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    return f"{headers}\n\n{response.text}"


def leaked(response: Answer, call: Call, markers: set[str]) -> list[str]:
    """The markers in the answer that the caller did not send itself."""
    shown = answer_text(response).lower()
    sent = call.sent_text().lower()
    return sorted(m for m in markers if m.lower() in shown and m.lower() not in sent)


def without_ids(message: str) -> str:
    return UUID_TEXT.sub("<id>", message)
