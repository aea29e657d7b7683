"""Recommendation decisions: gaps, the query, ranking, confidence and the model's answer."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest

from gradeflow.db.recommendations import CredentialCard
from gradeflow.jobs.essays.grade import SchemaViolation
from gradeflow.jobs.recommendations.gaps import SkillGap, query_text, skill_gaps
from gradeflow.jobs.recommendations.rank import (
    Candidate,
    confidence,
    overlap,
    rank_deterministic,
    template_rationale,
)
from gradeflow.jobs.recommendations.rerank import apply_ranking, parse_ranking, response_format


def card(title: str, *skills: str) -> CredentialCard:
    return CredentialCard(uuid.uuid4(), title, f"About {title}.", list(skills), None)


def candidate(n: int, title: str, similarity: float, *skills: str) -> Candidate:
    return Candidate(f"T{n}", uuid.uuid4(), card(title, *skills), similarity)


GAPS = skill_gaps({"sql": 80, "data_modeling": 70, "python": 50}, {"sql": 20, "python": 60})


def test_gaps_are_below_target_only_weakest_first_and_unmeasured_counts_as_zero() -> None:
    assert [SkillGap("data_modeling", 70, None), SkillGap("sql", 80, 20)] == GAPS
    assert [g.gap for g in GAPS] == [70, 60]


def test_the_query_names_the_gaps_in_words_then_the_essay_themes() -> None:
    text = query_text(GAPS, ["Design a schema for orders"])

    assert text.splitlines() == [
        "Learn data modeling, sql.",
        "Skills: data modeling, sql",
        "Topics: Design a schema for orders",
    ]


def test_a_user_at_every_target_gets_a_query_for_the_roles_skills() -> None:
    assert query_text([], role_skills=["sql", "python"]).startswith("Learn sql, python.")


def test_overlap_is_the_share_of_the_total_gap_a_credential_covers() -> None:
    assert overlap(card("SQL", "SQL"), GAPS) == pytest.approx(60 / 130)
    assert overlap(card("Modeling", "Data Modeling", "sql"), GAPS) == 1.0
    assert overlap(card("Painting", "watercolor"), GAPS) == 0.0


def test_confidence_weighs_similarity_overlap_and_the_models_judgement() -> None:
    assert confidence(0.8, 0.5) == Decimal("0.650")
    assert confidence(1.7, 1.0) == Decimal("1.000")  # similarity is clamped
    assert confidence(-0.2, 0.0) == Decimal("0.000")
    assert confidence(0.8, 0.5, 1.0) == Decimal("0.755")  # .35*.8 + .35*.5 + .3


def test_deterministic_ranking_prefers_covered_gaps_and_is_stable() -> None:
    painting = candidate(1, "Watercolor", 0.9, "watercolor")
    sql = candidate(2, "SQL Basics", 0.5, "sql")
    modeling = candidate(3, "Data Modeling", 0.5, "data modeling", "sql")

    ranked = rank_deterministic([painting, sql, modeling], GAPS)

    assert [r.candidate.card.title for r in ranked] == ["Data Modeling", "SQL Basics", "Watercolor"]
    assert ranked == rank_deterministic([modeling, painting, sql], GAPS)
    assert [r.trace_ids for r in ranked] == [
        [modeling.trace_id],
        [sql.trace_id],
        [painting.trace_id],
    ]


def test_template_rationale_cites_the_scores_it_rests_on() -> None:
    rationale = template_rationale(card("Modeling", "data modeling", "sql"), GAPS)

    assert rationale == (
        "Covers data modeling (not measured; the role targets 70) "
        "and sql (you scored 20; the role targets 80)."
    )
    assert "closest match" in template_rationale(card("Painting", "watercolor"), GAPS)


def test_the_schema_only_admits_the_retrieved_labels() -> None:
    candidates = [candidate(1, "A", 0.5), candidate(2, "B", 0.4)]

    schema = response_format(candidates)["json_schema"]
    choice = schema["schema"]["properties"]["ranking"]["items"]["properties"]

    assert schema["strict"] is True
    assert choice["candidate"]["enum"] == ["T1", "T2"]
    assert choice["source_trace_ids"]["items"]["enum"] == ["T1", "T2"]


def answer(*choices: dict[str, object]) -> str:
    return json.dumps({"ranking": list(choices), "summary": "s"})


def choice(label: str, relevance: int = 8, cites: tuple[str, ...] = ()) -> dict[str, object]:
    return {
        "candidate": label,
        "relevance": relevance,
        "rationale": f"because {label}",
        "source_trace_ids": list(cites),
    }


def test_the_models_order_wins_unknown_and_repeated_labels_are_dropped() -> None:
    a, b = candidate(1, "A", 0.5, "sql"), candidate(2, "B", 0.4)

    ranked = apply_ranking(
        parse_ranking(
            answer(choice("T2", 99, ("T1", "T9")), choice("T7"), choice("T2"), choice("T1"))
        ),
        [a, b],
        GAPS,
    )

    assert [r.candidate for r in ranked] == [b, a]
    assert ranked[0].trace_ids == [b.trace_id, a.trace_id]  # its own first; T9 is unknown
    assert ranked[0].confidence == confidence(0.4, 0.0, 1.0)  # relevance 99 clamped to 10
    assert ranked[0].rationale == "because T2"


@pytest.mark.parametrize(
    "content",
    [None, "", "{not json", json.dumps({"ranking": "x", "summary": "s"}), answer(choice("T9"))],
)
def test_an_answer_that_breaks_the_schema_or_chooses_nothing_is_a_violation(
    content: str | None,
) -> None:
    with pytest.raises(SchemaViolation):
        apply_ranking(parse_ranking(content), [candidate(1, "A", 0.5)], GAPS)
