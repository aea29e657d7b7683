"""A worker process warms up at boot: its pool's database connections and the LLM client
are ready before its first job, and a database that is down does not stop the boot."""

from __future__ import annotations

from gradeflow.jobs.essays.llm import _client
from gradeflow.settings import Settings
from gradeflow.workers.middleware import warm_up
from gradeflow.workers.runtime import Runtime


def test_warm_up_leaves_the_pool_open_and_the_llm_client_ready(
    database_url: str, redis_url: str
) -> None:
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        redis_url=redis_url,
        openai_base_url="http://127.0.0.1:9/v1",
        worker_threads=3,
    )
    runtime = Runtime(settings)
    _client.cache_clear()
    try:
        warm_up(runtime)
        # Every connection of the pool (threads + 2) opened, and back in the pool.
        assert runtime.engine.pool.checkedin() == 5
        assert _client.cache_info().currsize == 1
    finally:
        runtime.engine.dispose()


def test_warm_up_survives_a_database_that_is_down(redis_url: str) -> None:
    settings = Settings(
        _env_file=None,
        database_url="postgresql://nobody@127.0.0.1:9/nothing",
        redis_url=redis_url,
    )
    runtime = Runtime(settings)
    try:
        warm_up(runtime)  # logs a warning; the jobs connect on their own later
        assert runtime.engine.pool.checkedin() == 0
    finally:
        runtime.engine.dispose()
