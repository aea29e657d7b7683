"""What the dashboard tests share: the web process (``gradeflow api``, which serves the
API and ``/ops``) on a free loopback port, a real worker, and a headless Chromium
(Debian's ``chromium``, driven by Playwright) that keeps a screenshot of every page.

Screenshots land in ``test-artifacts/dashboard/`` at the repository root (gitignored),
or in ``$GRADEFLOW_TEST_ARTIFACTS/dashboard/`` when that is set.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from sqlalchemy import Engine, text

from gradeflow.workers.redis_server import free_port
from tests.support.jobs import TEST_TABLES_DDL
from tests.support.processes import REPO_ROOT, gradeflow_argv, running, wait_for, worker_argv

CHROMIUM = os.environ.get("GRADEFLOW_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("GRADEFLOW_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts"))


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """The screenshot directory, emptied once per run."""
    folder = ARTIFACTS / "dashboard"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser, web: str) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) per test, closed before the web process
    stops (its open connections would hold up the server's graceful shutdown)."""
    made = browser.new_context(viewport={"width": 1400, "height": 900})
    made.set_default_timeout(20_000)
    yield made
    made.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def test_tables(engine: Engine) -> None:
    """The tables the test job types (tests/support/jobs.py) write to."""
    with engine.begin() as conn:
        for ddl in TEST_TABLES_DDL:
            conn.execute(text(ddl))


@pytest.fixture
def web_env(gradeflow_env: dict[str, str]) -> dict[str, str]:
    # Fast polling, so a test watches a job finish within a second or two.
    return {**gradeflow_env, "GRADEFLOW_DASHBOARD_REFRESH_SECONDS": "0.5"}


@pytest.fixture
def web(web_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """Base URL of a running ``gradeflow api`` (the API and the dashboard)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / f"web-{port}.log"
    with running(gradeflow_argv("api", "--port", str(port)), web_env, log) as process:
        up = wait_for(lambda: process.poll() is not None or answers(base), timeout=60)
        assert up and process.poll() is None, log.read_text()
        yield base


@pytest.fixture
def worker(web_env: dict[str, str], test_tables: None, tmp_path: Path) -> Iterator[None]:
    """A real ``gradeflow worker`` on the cpu queue."""
    with running(worker_argv(), web_env, tmp_path / "worker.log"):
        yield


def answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
