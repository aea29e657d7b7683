"""What the API tests share: their own Redis database, API clients, and valid bodies."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from gradeflow.api.keys import issue_api_key
from gradeflow.db.clients import insert_client
from gradeflow.db.engine import transaction
from gradeflow.settings import Settings

#: The logical Redis database of these tests when GRADEFLOW_TEST_REDIS_URL names none.


@dataclass(frozen=True)
class Key:
    client_id: uuid.UUID
    role: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def add_client(engine: Engine, role: str, name: str | None = None) -> Key:
    issued = issue_api_key()
    with transaction(engine) as session:
        client = insert_client(
            session,
            name=name or f"{role}-{uuid.uuid4().hex[:6]}",
            role=role,
            key_hash=issued.key_hash,
            key_prefix=issued.key_prefix,
        )
    return Key(client.id, role, issued.key)


def api_settings(database_url: str, redis_url: str, **overrides: Any) -> Settings:
    return Settings(database_url=database_url, redis_url=redis_url, _env_file=None, **overrides)


def role_body(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "Data analyst",
        "description": "Reads data, writes SQL.",
        "skills_profile": {"sql": 80, "statistics": 60},
        **overrides,
    }


CHOICES = [{"id": "a", "text": "SELECT"}, {"id": "b", "text": "DROP"}, {"id": "c", "text": "GRANT"}]


def multiple_choice_body(role_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "role_id": role_id,
        "question_type": "multiple_choice",
        "prompt": "Which statement reads rows?",
        "choices": CHOICES,
        "rubric": {
            "correct": ["a"],
            "multi_select": False,
            "negative_marking": 0,
            "skills": ["sql"],
        },
        "weight": 1.5,
        "version": "1",
        **overrides,
    }


def essay_body(role_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "role_id": role_id,
        "question_type": "essay",
        "prompt": "Explain an index.",
        "rubric": {
            "criteria": [
                {
                    "name": "accuracy",
                    "description": "Is it right?",
                    "levels": [
                        {"score": 0, "descriptor": "wrong"},
                        {"score": 5, "descriptor": "right"},
                    ],
                    "keywords": ["b-tree"],
                }
            ],
            "skills": ["sql"],
        },
        "weight": 2,
        "version": "1",
        **overrides,
    }


def profile_body(role_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "role_id": role_id,
        "question_type": "profile",
        "prompt": "How much SQL do you write?",
        "choices": [{"id": "none", "text": "None"}, {"id": "daily", "text": "Daily"}],
        "rubric": {"skill": "sql", "mapping": {"none": 0, "daily": 90}},
        "weight": 1,
        "version": "1",
        **overrides,
    }


def credential_body(index: int = 0, **overrides: Any) -> dict[str, Any]:
    return {
        "title": f"SQL certificate {index}",
        "description": "Querying relational data.",
        "skills": ["sql"],
        "provider": "Example Academy",
        "metadata": {"hours": 20},
        **overrides,
    }
