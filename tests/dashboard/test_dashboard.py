"""The operator's dashboard in a real headless Chromium: the web process serving the API
and /ops, a real worker, a real PostgreSQL and Redis. Every page is photographed into
the screenshot folder (see conftest.py)."""

from __future__ import annotations

import math
import re
import uuid
from pathlib import Path

import httpx
from playwright.sync_api import BrowserContext, Dialog, Page, expect
from sqlalchemy import Engine, text

from gradeflow.db.clients import revoke_client
from gradeflow.db.engine import transaction
from gradeflow.db.webhooks import (
    DeliveryRecord,
    fail_event,
    insert_endpoint,
    insert_events,
    record_delivery,
)
from gradeflow.jobs.metric_names import DURATION_P95_MS, PICKUP_P95_MS, QUEUE_DEPTH
from tests.dashboard.seeds import (
    SeedJob,
    Snapshot,
    dead_job,
    insert_job,
    insert_snapshots,
    job_status,
)
from tests.integration.api_helpers import Key, add_client, multiple_choice_body, role_body

LOGIN = re.compile(r"/ops/login")


def shoot(page: Page, folder: Path, name: str) -> None:
    page.screenshot(path=folder / f"{name}.png", full_page=True)


def log_in(page: Page, web: str, key: str, start: str = "/ops") -> None:
    page.goto(f"{web}{start}")
    expect(page).to_have_url(LOGIN)
    page.fill("#api_key", key)
    page.click("form[action='/ops/login'] button[type=submit]")


def hour_of_snapshots() -> list[Snapshot]:
    """An hour of what ``snapshot_metrics`` writes each minute: a backlog that builds up
    on the cpu queue and drains, a steady llm queue."""
    rows: list[Snapshot] = []
    for minute in range(60, -1, -1):
        swell = max(0.0, math.sin((60 - minute) / 60 * math.pi)) * 120
        rows += [
            Snapshot(
                QUEUE_DEPTH, round(swell), {"queue": "cpu", "job_type": "score_rules"}, minute
            ),
            Snapshot(QUEUE_DEPTH, 8, {"queue": "cpu", "job_type": "embed_assessment"}, minute),
            Snapshot(
                QUEUE_DEPTH, 5 + minute % 7, {"queue": "llm", "job_type": "score_essay"}, minute
            ),
            Snapshot(PICKUP_P95_MS, 40 + swell * 9, {"queue": "cpu"}, minute),
            Snapshot(PICKUP_P95_MS, 300 + (minute % 5) * 40, {"queue": "llm"}, minute),
            Snapshot(DURATION_P95_MS, 25, {"queue": "cpu", "job_type": "score_rules"}, minute),
            Snapshot(DURATION_P95_MS, 2400, {"queue": "llm", "job_type": "score_essay"}, minute),
        ]
    return rows


def test_an_operator_retries_a_dead_job_from_the_page_and_watches_it_succeed(
    page: Page,
    context: BrowserContext,
    web: str,
    worker: None,
    engine: Engine,
    screenshots: Path,
) -> None:
    operator = add_client(engine, "operator", "ops-desk")
    submitter = add_client(engine, "submitter", "learning-platform")
    job_id = dead_job(engine, client_id=submitter.client_id, payload={"sleep": 0.3})
    for status in ("succeeded", "succeeded", "queued"):
        insert_job(engine, SeedJob(job_type="score_rules", status=status, attempts=1))
    insert_snapshots(engine, hour_of_snapshots())

    log_in(page, web, operator.key)
    expect(page).to_have_url(f"{web}/ops")
    dead_cell = page.locator("#loads tr[data-type='test.effect'] td").nth(4)
    expect(dead_cell).to_have_text("1")
    expect(page.locator("[data-chart='depth'] polyline[data-queue='cpu']")).to_have_count(1)
    expect(page.locator("[data-chart='pickup'] polyline")).to_have_count(2)
    cookie = next(c for c in context.cookies() if c["name"] == "gradeflow_ops")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/ops"
    assert operator.key not in cookie["value"]
    shoot(page, screenshots, "01-overview")
    # Live: a job dying now shows up on the open page, which is not reloaded.
    page.evaluate("window.__sameDocument = 'overview'")
    dead_job(engine, job_type="embed_assessment")
    expect(page.locator("[data-kpi='Dead'] .value")).to_have_text("2")
    expect(page.locator("#loads tr[data-type='embed_assessment'] td").nth(4)).to_have_text("1")
    assert page.evaluate("window.__sameDocument") == "overview"

    page.click("#loads tr[data-type='test.effect'] a")
    expect(page).to_have_url(re.compile(r"/ops/jobs\?status=dead&job_type=test.effect"))
    row = page.locator(f"#jobs tr[data-job='{job_id}']")
    expect(row).to_contain_text("learning-platform")
    expect(row).to_contain_text("upstream answered 503 (attempt 3)")
    shoot(page, screenshots, "02-jobs-dead")

    row.locator("a").first.click()
    expect(page.locator("#job-status")).to_have_text("dead")
    expect(page.locator("details.failure")).to_have_count(3)
    expect(page.locator("details.failure[open] pre.traceback")).to_contain_text(
        "ConnectionError: upstream answered 503 (attempt 3)"
    )
    expect(page.locator("#payload")).to_contain_text('"sleep": 0.3')
    shoot(page, screenshots, "03-job-dead")

    # The same document must still be there when the job has succeeded: no reload.
    page.evaluate("window.__sameDocument = 'yes'")
    asked: list[str] = []

    def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.click("form[action$='/retry'] button")
    expect(page.locator("#notice")).to_contain_text("queued again")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=30_000)
    assert asked and "Retry job" in asked[0] and str(job_id) in asked[0]
    assert page.evaluate("window.__sameDocument") == "yes"
    expect(page.locator("#timeline")).to_contain_text("retry by ops-desk (operator)")
    expect(page.locator("#timeline li.t-finished")).to_contain_text("succeeded")
    expect(page.locator("form[action$='/retry']")).to_have_count(0)
    shoot(page, screenshots, "04-job-succeeded")
    assert job_status(engine, job_id) == "succeeded"
    with engine.connect() as conn:
        runs = conn.execute(
            text("SELECT count(*) FROM test_job_runs WHERE job_id = :id"), {"id": job_id}
        ).scalar_one()
    assert runs == 1


def test_a_dismissed_confirmation_changes_nothing_and_bulk_retry_asks_first(
    page: Page, web: str, engine: Engine, screenshots: Path
) -> None:
    operator = add_client(engine, "operator")
    dead = [dead_job(engine) for _ in range(3)]
    other = dead_job(engine, job_type="score_rules")
    log_in(page, web, operator.key, "/ops/jobs?status=dead&job_type=test.effect")
    expect(page.locator("#dead-matching")).to_have_text("3")

    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click(f"#jobs tr[data-job='{dead[0]}'] form[action$='/retry'] button")
    page.wait_for_timeout(500)
    assert job_status(engine, dead[0]) == "dead"

    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.click(".bulk form[action='/ops/jobs/retry-dead'] button")
    expect(page.locator("#notice")).to_contain_text("3 dead job(s) queued again")
    assert asked == ["Queue all 3 dead job(s) matching this filter again?"]
    assert {job_status(engine, j) for j in dead} == {"queued"}
    assert job_status(engine, other) == "dead"
    expect(page.locator("#dead-matching")).to_have_text("0")
    shoot(page, screenshots, "05-jobs-after-bulk-retry")


def test_assessment_and_webhook_pages_and_a_redelivery(
    page: Page, web: str, engine: Engine, screenshots: Path
) -> None:
    admin = add_client(engine, "admin", "catalog-admin")
    submitter = add_client(engine, "submitter", "hiring-tool")
    assessment_id = submit_assessment(web, admin, submitter)
    event_id = failed_delivery(engine, submitter)

    log_in(page, web, admin.key, "/ops/assessments")
    page.fill("input[name=q]", "candidate-42")
    page.click("form.filters button")
    expect(page.locator("#assessments tbody tr")).to_have_count(1)
    expect(page.locator("#assessments")).to_contain_text("hiring-tool")
    shoot(page, screenshots, "06-assessments")

    page.click("#assessments tbody a")
    expect(page).to_have_url(f"{web}/ops/assessments/{assessment_id}")
    expect(page.locator("#pipeline")).to_contain_text("score_rules")
    expect(page.locator("#scores tbody tr")).to_have_count(1)
    expect(page.locator("main")).to_contain_text("candidate-42@example.com")
    shoot(page, screenshots, "07-assessment")

    page.goto(f"{web}/ops/webhooks")
    endpoint_row = page.locator("#endpoints tbody tr").first
    expect(endpoint_row).to_contain_text("hiring-tool")
    expect(endpoint_row).to_contain_text("50.0%")
    expect(page.locator("#deliveries")).to_contain_text("failed")
    failed_row = page.locator(f"#deliveries tr[data-event='{event_id}']")
    expect(failed_row).to_contain_text("failed")
    failed_row.locator("details summary").click()
    expect(failed_row.locator("ol.attempts li")).to_have_text(re.compile(r"scheduled · 503"))
    shoot(page, screenshots, "08-webhooks")

    page.once("dialog", lambda dialog: dialog.accept())
    failed_row.locator("form[action$='/redeliver'] button").click()
    expect(page.locator("#notice")).to_contain_text("delivered again")
    expect(failed_row).to_contain_text("pending")
    expect(failed_row.locator("form[action$='/redeliver']")).to_have_count(0)
    with engine.connect() as conn:
        status, jobs = conn.execute(
            text(
                "SELECT ev.status, (SELECT count(*) FROM async_jobs WHERE job_type ="
                " 'deliver_webhook' AND payload->>'trigger' = 'manual') FROM webhook_events ev"
                " WHERE ev.id = :id"
            ),
            {"id": event_id},
        ).one()
        audit = conn.execute(
            text("SELECT action FROM audit_logs WHERE resource_id = :id"), {"id": event_id}
        ).scalars()
        assert (status, jobs) == ("pending", 1)
        assert list(audit) == ["webhook_event.redeliver"]


def submit_assessment(web: str, admin: Key, submitter: Key) -> str:
    """A role, a question and an assessment, through the API like an upstream app."""
    with httpx.Client(base_url=web, timeout=30) as http:
        role = http.post("/v1/roles", json=role_body(), headers=admin.headers).json()
        http.post(
            "/v1/questions", json=multiple_choice_body(role["id"]), headers=admin.headers
        ).raise_for_status()
        question = http.get(
            "/v1/questions", params={"role_id": role["id"]}, headers=admin.headers
        ).json()["items"][0]
        created = http.post(
            "/v1/assessments",
            json={
                "user": {"external_id": "candidate-42", "email": "candidate-42@example.com"},
                "role_id": role["id"],
                "responses": [{"question_id": question["id"], "answer": "a"}],
            },
            headers=submitter.headers,
        )
        assert created.status_code == 202, created.text
        assessment_id: str = created.json()["id"]
    return assessment_id


def failed_delivery(engine: Engine, submitter: Key) -> uuid.UUID:
    """An endpoint that answered 200 once and 503 once; the second event gave up."""
    with engine.begin() as conn:
        endpoint = insert_endpoint(
            conn, submitter.client_id, "https://hooks.example.com/gradeflow",
            ["assessment.completed"], "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXQ=",
        )  # fmt: skip
        delivered, failed = (
            insert_events(conn, [endpoint.id], "assessment.completed", {"n": n}, None)[0]
            for n in (1, 2)
        )
        for event, code, status in ((delivered, 200, "delivered"), (failed, 503, "failed")):
            record_delivery(
                conn,
                DeliveryRecord(
                    event, endpoint.id, "scheduled", code, 120, None if code == 200 else "503",
                    "ok" if code == 200 else "unavailable", status, code == 200, None,
                ),
            )  # fmt: skip
        assert not fail_event(conn, failed)  # already failed: nothing to do
    return failed


def test_nothing_shows_without_a_session_and_a_submitter_key_cannot_log_in(
    page: Page, context: BrowserContext, web: str, engine: Engine, screenshots: Path
) -> None:
    job_id = dead_job(engine)
    for path in ("/ops", "/ops/jobs", f"/ops/jobs/{job_id}", "/ops/assessments", "/ops/webhooks"):
        page.goto(f"{web}{path}")
        expect(page).to_have_url(LOGIN)
        # The path comes back as the login's ``next``; nothing of the job does.
        assert "upstream answered" not in page.content() and "test.effect" not in page.content()
    expect(page.locator("input[name=next]")).to_have_value("/ops/webhooks")
    shoot(page, screenshots, "00-login")

    script = page.request.get(
        f"{web}/ops/api/overview", headers={"X-Requested-With": "gradeflow-dashboard"}
    )
    assert script.status == 401
    forged = {"name": "gradeflow_ops", "value": "forged.value", "domain": "127.0.0.1"}
    context.add_cookies([{**forged, "path": "/ops"}])  # type: ignore[list-item]
    page.goto(f"{web}/ops/jobs")
    expect(page).to_have_url(LOGIN)

    submitter = add_client(engine, "submitter")
    log_in(page, web, submitter.key)
    expect(page.locator("#login-error")).to_contain_text("submitter key cannot open")
    assert not [c for c in context.cookies() if c["name"] == "gradeflow_ops" and c["value"]]
    shoot(page, screenshots, "09-login-submitter-refused")
    page.fill("#api_key", "gf_" + "x" * 43)
    page.click("form[action='/ops/login'] button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("unknown or revoked")


def test_posts_need_the_csrf_token_and_the_origin_and_revocation_ends_the_session(
    page: Page, web: str, engine: Engine, screenshots: Path
) -> None:
    operator = add_client(engine, "operator")
    job_id = dead_job(engine)
    log_in(page, web, operator.key, f"/ops/jobs/{job_id}")
    expect(page.locator("#job-status")).to_have_text("dead")
    token = page.locator("form[action$='/retry'] input[name=csrf_token]").input_value()
    retry = f"{web}/ops/jobs/{job_id}/retry"

    no_token = page.request.post(retry, form={"back": "/ops"}, headers={"Origin": web})
    assert no_token.status == 403 and "CSRF token" in no_token.text()
    wrong_token = page.request.post(
        retry, form={"csrf_token": token[::-1], "back": "/ops"}, headers={"Origin": web}
    )
    assert wrong_token.status == 403
    foreign = page.request.post(
        retry, form={"csrf_token": token}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status == 403 and "Origin" in foreign.text()
    # The same from the page itself: its form posted without its token.
    page.evaluate(
        """() => {
            const form = document.querySelector("form[action$='/retry']");
            form.removeAttribute("data-confirm");
            form.querySelector("input[name=csrf_token]").remove();
            form.submit();
        }"""
    )
    expect(page.locator("#refused-reason")).to_contain_text("CSRF token is missing")
    assert job_status(engine, job_id) == "dead"
    shoot(page, screenshots, "10-csrf-refused")

    with transaction(engine) as session:
        assert revoke_client(session, operator.client_id) is not None
    page.goto(f"{web}/ops/jobs/{job_id}")
    expect(page).to_have_url(LOGIN)
    stale = page.request.post(
        retry, form={"csrf_token": token}, headers={"Origin": web}, max_redirects=0
    )
    assert stale.status == 303 and job_status(engine, job_id) == "dead"
