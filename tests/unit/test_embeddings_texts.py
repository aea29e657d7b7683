"""What text stands for a credential or a role when it is embedded."""

from __future__ import annotations

import uuid

from gradeflow.db.embeddings import CredentialForEmbedding, RoleForEmbedding
from gradeflow.jobs.embeddings.texts import credential_text, ranked_skills, role_text


def test_credential_text_is_title_description_and_skills() -> None:
    credential = CredentialForEmbedding(
        uuid.uuid4(), " SQL Fundamentals ", "Querying relational data.", ["sql", "joins"]
    )
    assert credential_text(credential) == (
        "SQL Fundamentals\nQuerying relational data.\nSkills: sql, joins"
    )


def test_credential_text_leaves_out_what_is_missing() -> None:
    assert credential_text(CredentialForEmbedding(uuid.uuid4(), "Excel", None, [])) == "Excel"
    assert credential_text(CredentialForEmbedding(uuid.uuid4(), "Excel", "  ", [])) == "Excel"


def test_role_text_lists_skills_by_weight() -> None:
    role = RoleForEmbedding(
        uuid.uuid4(), "Data analyst", "Reads data.", {"statistics": 60, "sql": 80, "excel": 60}
    )
    assert role_text(role) == "Data analyst\nReads data.\nSkills: sql, excel, statistics"


def test_ranked_skills_treats_odd_weights_as_zero() -> None:
    assert ranked_skills({"b": "high", "a": None, "c": 1.5}) == ["c", "a", "b"]
