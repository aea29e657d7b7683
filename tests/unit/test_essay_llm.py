"""The SDK call against the fake server: answers, and each error classified for the engine."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from gradeflow.jobs.errors import PermanentError, Snooze
from gradeflow.jobs.essays.llm import (
    DEFAULT_RATE_LIMIT_WAIT,
    LlmUnavailable,
    chat,
    client_for,
    llm_configured,
    retry_after_seconds,
)
from gradeflow.jobs.essays.prompt import build_messages, response_format
from gradeflow.jobs.rubrics import EssayRubric
from gradeflow.settings import Settings
from tests.fakes.openai_server import FakeOpenAI, fake_openai

RUBRIC = EssayRubric.model_validate(
    {
        "criteria": [
            {
                "name": "accuracy",
                "description": "Is it right?",
                "levels": [
                    {"score": 0, "descriptor": "wrong"},
                    {"score": 5, "descriptor": "right"},
                ],
            }
        ]
    }
)
MESSAGES = build_messages("Explain an index.", RUBRIC, "A b-tree.", "ESSAY-test")


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with fake_openai() as server:
        yield server


def client(server: FakeOpenAI, timeout: float = 5.0) -> openai.OpenAI:
    settings = Settings(
        _env_file=None, openai_base_url=server.base_url, llm_timeout_seconds=timeout
    )
    return client_for(settings)


def call(server: FakeOpenAI, timeout: float = 5.0) -> object:
    return chat(client(server, timeout), "gpt-4o-mini", MESSAGES, response_format(RUBRIC))


def test_a_graded_answer_comes_back_with_its_request_id_and_usage(server: FakeOpenAI) -> None:
    server.script({"kind": "grade", "scores": {"accuracy": 4}})
    answer = chat(client(server), "gpt-4o-mini", MESSAGES, response_format(RUBRIC)).answer()

    assert '"score": 4' in (answer.content or "")
    assert answer.finish_reason == "stop"
    assert answer.request_id and answer.request_id.startswith("req_")
    assert answer.usage and answer.usage.prompt_tokens > 0
    [request] = server.chat_requests()
    assert request.body["temperature"] == 0
    assert request.body["response_format"]["json_schema"]["strict"] is True
    assert request.body["messages"] == MESSAGES


def test_missing_usage_is_none(server: FakeOpenAI) -> None:
    server.script({"kind": "grade", "usage": False})
    answer = chat(client(server), "gpt-4o-mini", MESSAGES, response_format(RUBRIC)).answer()
    assert answer.usage is None


def test_rate_limited_snoozes_for_retry_after(server: FakeOpenAI) -> None:
    server.script({"kind": "rate_limit", "retry_after": 7})
    with pytest.raises(Snooze) as caught:
        call(server)
    assert caught.value.seconds == 7
    assert "rate_limit_exceeded" in caught.value.reason


def test_insufficient_quota_is_permanent(server: FakeOpenAI) -> None:
    server.script({"kind": "quota"})
    with pytest.raises(PermanentError, match="insufficient_quota"):
        call(server)


@pytest.mark.parametrize("status", [500, 502, 503, 408])
def test_server_errors_are_worth_retrying(server: FakeOpenAI, status: int) -> None:
    server.script({"kind": "status", "status": status})
    with pytest.raises(LlmUnavailable, match=f"HTTP {status}"):
        call(server)


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_client_errors_are_permanent(server: FakeOpenAI, status: int) -> None:
    server.script({"kind": "status", "status": status})
    with pytest.raises(PermanentError, match=f"HTTP {status}"):
        call(server)


def test_a_timeout_is_worth_retrying(server: FakeOpenAI) -> None:
    server.script({"kind": "timeout", "seconds": 5})
    with pytest.raises(LlmUnavailable, match="timed out"):
        call(server, timeout=0.3)


def test_an_unreachable_server_is_worth_retrying() -> None:
    with fake_openai() as gone:
        settings = Settings(_env_file=None, openai_base_url=gone.base_url, llm_timeout_seconds=2)
    with pytest.raises(LlmUnavailable, match="cannot reach"):
        chat(client_for(settings), "m", MESSAGES, response_format(RUBRIC))


def test_a_success_that_is_no_chat_completion_is_worth_retrying(server: FakeOpenAI) -> None:
    server.script({"kind": "status", "status": 200})  # an error object under a 200
    reply = chat(client(server), "gpt-4o-mini", MESSAGES, response_format(RUBRIC))
    with pytest.raises(LlmUnavailable, match="not a chat completion"):
        reply.answer()


def test_only_one_request_is_sent_per_call(server: FakeOpenAI) -> None:
    server.script({"kind": "status", "status": 500})
    with pytest.raises(LlmUnavailable):
        call(server)
    assert len(server.chat_requests()) == 1  # the engine retries, never the SDK


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert (
        retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480) == 10
    )
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None
    assert DEFAULT_RATE_LIMIT_WAIT > 0


def test_an_llm_is_configured_by_key_or_base_url() -> None:
    assert not llm_configured(Settings(_env_file=None))
    assert llm_configured(Settings(_env_file=None, openai_api_key="sk-x"))
    assert llm_configured(Settings(_env_file=None, openai_base_url="http://127.0.0.1:1/v1"))
