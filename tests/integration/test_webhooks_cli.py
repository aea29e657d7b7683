"""``gradeflow webhooks redeliver|recover`` as a subprocess against a real database."""

from __future__ import annotations

import subprocess
import uuid

from sqlalchemy import Engine, text

from gradeflow.db.webhooks import disable_endpoint, insert_endpoint
from gradeflow.jobs.webhooks import emit_event
from gradeflow.jobs.webhooks.signing import new_secret
from tests.integration.api_helpers import add_client
from tests.support.processes import gradeflow_argv


def failed_event(engine: Engine) -> tuple[uuid.UUID, uuid.UUID]:
    """An endpoint, disabled, with one failed event; return (endpoint id, event id)."""
    client = add_client(engine, "submitter")
    with engine.begin() as conn:
        endpoint = insert_endpoint(
            conn, client.client_id, "https://93.184.216.34/h", ["assessment.failed"], new_secret()
        )
        [job] = emit_event(conn, client.client_id, "assessment.failed", {"id": "a"})
        event_id = uuid.UUID(job.payload["event_id"])
        conn.execute(text("UPDATE webhook_events SET status = 'failed'"))
        disable_endpoint(conn, endpoint.id, "the endpoint answered 410 Gone")
    return endpoint.id, event_id


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        gradeflow_argv("webhooks", *args), env=env, capture_output=True, text=True, timeout=120
    )


def manual_jobs(engine: Engine, event_id: uuid.UUID) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM async_jobs WHERE job_type = 'deliver_webhook'"
                    " AND payload->>'event_id' = :e AND payload->>'trigger' = 'manual'"
                ),
                {"e": str(event_id)},
            ).scalar_one()
        )


def test_redeliver_and_recover_queue_manual_deliveries(
    engine: Engine, gradeflow_env: dict[str, str]
) -> None:
    endpoint_id, event_id = failed_event(engine)
    done = cli(gradeflow_env, "redeliver", str(event_id))
    assert done.returncode == 0, done.stderr
    assert manual_jobs(engine, event_id) == 1
    again = cli(gradeflow_env, "redeliver", str(event_id))
    assert "already has a delivery under way" in again.stdout
    with engine.begin() as conn:
        conn.execute(text("UPDATE webhook_events SET status = 'failed'"))
    recovered = cli(gradeflow_env, "recover", str(endpoint_id), "--since", "2000-01-01")
    assert recovered.returncode == 0, recovered.stderr
    assert "1 event(s) queued" in recovered.stdout
    assert manual_jobs(engine, event_id) == 2
    with engine.connect() as conn:
        enabled = conn.execute(
            text("SELECT enabled FROM webhook_endpoints WHERE id = :e"), {"e": endpoint_id}
        ).scalar_one()
        actions = conn.execute(
            text("SELECT action, actor_role FROM audit_logs ORDER BY created_at")
        ).all()
    assert enabled is True
    assert [tuple(a) for a in actions] == [
        ("webhook_event.redeliver", "cli"),
        ("webhook_endpoint.recover", "cli"),
    ]


def test_bad_and_unknown_ids_fail_with_one_line(
    engine: Engine, gradeflow_env: dict[str, str]
) -> None:
    malformed = cli(gradeflow_env, "redeliver", "nope")
    assert malformed.returncode == 2 and "error:" in malformed.stderr
    unknown = cli(gradeflow_env, "recover", str(uuid.uuid4()), "--since", "2000-01-01")
    assert unknown.returncode == 1 and "no webhook endpoint" in unknown.stderr
