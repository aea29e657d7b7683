"""The fake LLM answers each schema gradeflow sends the way gradeflow parses it, refuses
the others, and plays its fault mix; all through the real openai SDK."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from gradeflow.jobs.recommendations.rerank import SCHEMA_NAME, parse_ranking
from tests.fakes.openai_server import RANKING_SCHEMA, FakeOpenAI, fake_openai

MESSAGES: list[Any] = [{"role": "user", "content": "rank these"}]


def client(server: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", base_url=server.base_url, max_retries=0, timeout=5)


def ranking_format(labels: list[str]) -> Any:
    choice = {"type": "object", "properties": {"candidate": {"type": "string", "enum": labels}}}
    schema = {"type": "object", "properties": {"ranking": {"type": "array", "items": choice}}}
    return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "schema": schema}}


def test_the_ranking_schema_gets_every_candidate_in_a_shape_the_job_parses() -> None:
    assert RANKING_SCHEMA == SCHEMA_NAME
    with fake_openai() as server:
        answer = client(server).chat.completions.create(
            model="m", messages=MESSAGES, response_format=ranking_format(["T1", "T2", "T3"])
        )
    ranking = parse_ranking(answer.choices[0].message.content)
    assert [choice.candidate for choice in ranking.ranking] == ["T1", "T2", "T3"]
    assert all(choice.source_trace_ids == [choice.candidate] for choice in ranking.ranking)


def test_an_unknown_schema_is_refused() -> None:
    unknown: Any = {"type": "json_schema", "json_schema": {"name": "horoscope", "schema": {}}}
    with fake_openai() as server:
        with pytest.raises(openai.BadRequestError):
            client(server).chat.completions.create(
                model="m", messages=MESSAGES, response_format=unknown
            )
        assert server.stats()["played"] == {"unknown_schema": 1}


def test_the_fault_mix_answers_its_share_and_scripted_replies_come_first() -> None:
    with fake_openai() as server:
        server.configure(faults=[{"p": 1.0, "reply": {"kind": "status", "status": 500}}])
        server.script({"kind": "rate_limit", "retry_after": 0})
        with pytest.raises(openai.RateLimitError):
            client(server).chat.completions.create(model="m", messages=MESSAGES)
        with pytest.raises(openai.InternalServerError):
            client(server).chat.completions.create(model="m", messages=MESSAGES)
        stats = server.stats()
    assert stats["played"] == {"rate_limit": 1, "status": 1}
    assert stats["scripted_left"] == 0 and stats["requests"] == 2
