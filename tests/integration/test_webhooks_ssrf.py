"""The SSRF guard at delivery: with private targets not allowed, a worker never
connects to a loopback or private address, even for an endpoint already registered
(the name is resolved again on every attempt)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine, text

from gradeflow.db.webhooks import insert_endpoint
from gradeflow.jobs.enqueue import insert_new_jobs
from gradeflow.jobs.webhooks import emit_event
from gradeflow.jobs.webhooks.signing import new_secret
from gradeflow.settings import Settings
from gradeflow.workers.broker import build_broker
from gradeflow.workers.messages import send_messages
from tests.fakes.webhook_receiver import receiving
from tests.integration.api_helpers import add_client
from tests.support.processes import running, scheduler_argv, wait_for, worker_argv


def test_delivery_to_private_targets_is_refused_without_a_connection(
    engine: Engine, redis_url: str, gradeflow_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **gradeflow_env,
        "GRADEFLOW_WEBHOOK_ALLOW_HTTP": "1",
        "GRADEFLOW_WEBHOOK_RETRY_SCHEDULE": json.dumps([0, 0.2]),
    }
    client = add_client(engine, "submitter")
    with receiving([]) as (receiver, port):
        urls = [f"http://localhost:{port}/", f"http://127.0.0.1:{port}/", f"http://[::1]:{port}/",
                "http://10.0.0.1:9/", "http://169.254.169.254/", "http://100.64.0.1/"]  # fmt: skip
        with engine.begin() as conn:
            # Registered while allowed (or before a DNS change): inserted directly.
            for url in urls:
                insert_endpoint(conn, client.client_id, url, ["assessment.failed"], new_secret())
            jobs = emit_event(conn, client.client_id, "assessment.failed", {"id": "x"})
            inserted = insert_new_jobs(conn, jobs, 500)
        send_messages(
            build_broker(Settings(redis_url=redis_url, _env_file=None)), inserted.messages
        )
        log = tmp_path / "procs.log"
        with running(worker_argv(("webhooks",)), env, log), running(scheduler_argv(), env, log):
            assert wait_for(lambda: failed(engine) == len(urls), 60), log.read_text()
        assert receiver.count() == 0
    with engine.connect() as conn:
        errors = conn.execute(text("SELECT error, response_code FROM webhook_attempts")).all()
    assert len(errors) == 2 * len(urls)
    assert all(code is None and "SSRF guard" in (error or "") for error, code in errors)
    assert any("localhost is refused" in (error or "") for error, _ in errors)


def failed(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM webhook_events WHERE status = 'failed'")
            ).scalar_one()
        )
