"""The pipeline's decisions and the result computation: pure functions, no database."""

from __future__ import annotations

import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from gradeflow.db.assessments import Progress, QuestionResult
from gradeflow.jobs.pipeline import (
    BUILD_RECOMMENDATIONS,
    SCORE_ESSAY,
    SCORE_ESSAY_OFFLINE,
    SCORE_RULES,
    Finish,
    GradeOffline,
    Recommend,
    Wait,
    next_step,
    scoring_jobs,
)
from gradeflow.jobs.results import compute_result

ESSAY = uuid.uuid4()
DONE = Finish("completed", "every answer is scored and the recommendation stage ended")


def progress(
    jobs: dict[tuple[str, str], int], unscored: list[uuid.UUID] | None = None, status: str = ""
) -> Progress:
    return Progress(
        status=status or "awaiting_async",
        client_id=None,
        jobs=Counter(jobs),
        unscored_essays=unscored or [],
    )


@pytest.mark.parametrize(
    ("jobs", "unscored", "expected"),
    [
        ({(SCORE_RULES, "running"): 1}, [], Wait()),
        ({(SCORE_RULES, "succeeded"): 1, (SCORE_ESSAY, "queued"): 1}, [ESSAY], Wait()),
        ({(SCORE_RULES, "succeeded"): 1}, [], Recommend()),
        ({(SCORE_RULES, "succeeded"): 1, (BUILD_RECOMMENDATIONS, "running"): 1}, [], Wait()),
        ({(SCORE_RULES, "succeeded"): 1, (BUILD_RECOMMENDATIONS, "succeeded"): 1}, [], DONE),
        # A dead recommendation stage still completes the assessment: its scores stand.
        ({(SCORE_RULES, "succeeded"): 1, (BUILD_RECOMMENDATIONS, "dead"): 1}, [], DONE),
        # Webhook deliveries of the assessment are not part of its pipeline.
        (
            {
                (SCORE_RULES, "succeeded"): 1,
                (BUILD_RECOMMENDATIONS, "succeeded"): 1,
                ("deliver_webhook", "queued"): 1,
            },
            [],
            DONE,
        ),
        ({(SCORE_RULES, "dead"): 1}, [], Finish("failed", "rule scoring did not succeed")),
        ({(SCORE_RULES, "cancelled"): 1}, [], Finish("failed", "rule scoring did not succeed")),
        ({(SCORE_ESSAY, "dead"): 1}, [ESSAY], GradeOffline([ESSAY])),
        ({(SCORE_ESSAY, "cancelled"): 1}, [ESSAY], GradeOffline([ESSAY])),
        (
            {(SCORE_ESSAY, "dead"): 1, (SCORE_ESSAY_OFFLINE, "dead"): 1},
            [ESSAY],
            Finish("failed", "the offline essay scorer did not succeed"),
        ),
        (
            {(SCORE_ESSAY, "dead"): 1, (SCORE_ESSAY_OFFLINE, "succeeded"): 1},
            [],
            Recommend(),
        ),
    ],
)
def test_next_step(
    jobs: dict[tuple[str, str], int], unscored: list[uuid.UUID], expected: object
) -> None:
    assert next_step(progress(jobs, unscored)) == expected


def test_an_assessment_that_left_the_pipeline_is_left_alone() -> None:
    assert next_step(progress({(SCORE_RULES, "succeeded"): 1}, status="completed")) == Wait()


def test_scoring_jobs_are_one_rules_job_and_one_job_per_essay() -> None:
    assessment, mc, profile, essay_a, essay_b = (uuid.uuid4() for _ in range(5))
    kinds = {mc: "multiple_choice", profile: "profile", essay_a: "essay", essay_b: "essay"}

    jobs = scoring_jobs(assessment, None, kinds)

    assert [j.job_type for j in jobs] == [SCORE_RULES, SCORE_ESSAY, SCORE_ESSAY]
    assert {j.payload.get("snapshot_id") for j in jobs[1:]} == {str(essay_a), str(essay_b)}
    assert all(j.assessment_id == assessment for j in jobs)
    # Dedup keys make a re-enqueued stage a no-op.
    assert [j.dedup_key for j in jobs] == [str(assessment), str(essay_a), str(essay_b)]
    assert scoring_jobs(assessment, None, {essay_a: "essay"})[0].job_type == SCORE_ESSAY


def result(
    kind: str, weight: str, score: str | None, rubric: dict[str, Any], model: str | None = None
) -> QuestionResult:
    return QuestionResult(
        snapshot_id=uuid.uuid4(),
        question_id=uuid.uuid4(),
        question_type=kind,
        version="1",
        weight=Decimal(weight),
        rubric=rubric,
        score=None if score is None else Decimal(score),
        explanation=None,
        rules_applied=None,
        model=model,
        essay_payload=None,
    )


def test_the_total_counts_graded_questions_and_skills_count_every_question() -> None:
    questions = [
        result("multiple_choice", "1", "1", {"skills": ["sql"]}),
        result("multiple_choice", "2", "0.5", {"skills": ["sql", "stats"]}),
        result("essay", "2", "1.5", {"skills": ["writing"]}, model="gpt-4o-mini"),
        result("profile", "1", "0.9", {"skill": "sql"}),
    ]

    computed = compute_result(questions)

    # (1 + 0.5 + 1.5) / (1 + 2 + 2) = 60 %; the profile answer is a self-report.
    assert computed.total_score == Decimal("60.00")
    # sql: (100 x 1 + 25 x 2 + 90 x 1) / 4 = 60; stats: 25; writing: 75.
    assert computed.skill_scores == {"sql": 60.0, "stats": 25.0, "writing": 75.0}
    assert computed.degraded is False


def test_an_offline_graded_essay_makes_the_result_degraded() -> None:
    questions = [result("essay", "1", "0.5", {"skills": []}, model="fallback:keywords-v1")]

    assert compute_result(questions).degraded is True


def test_nothing_graded_gives_no_total() -> None:
    computed = compute_result([result("profile", "1", "0.5", {"skill": "sql"})])

    assert computed.total_score is None
    assert computed.skill_scores == {"sql": 50.0}
