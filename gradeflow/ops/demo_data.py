"""The sample catalog ``gradeflow demo`` loads, and the answers its users give.

Deterministic (seeded), so two runs show the same spread of scores. Credentials are
composed from topics x levels x formats: a few hundred plausible catalog entries
without shipping a data file.
"""

from __future__ import annotations

import random
from typing import Any

ROLES: list[dict[str, Any]] = [
    {
        "name": "Data analyst",
        "description": "Turns questions into queries, numbers into decisions.",
        "skills_profile": {"sql": 80, "statistics": 70, "data_visualization": 60, "python": 50},
    },
    {
        "name": "Backend engineer",
        "description": "Builds and runs services and their databases.",
        "skills_profile": {"python": 80, "databases": 70, "testing": 60, "security": 50},
    },
]

#: Per role: (type, prompt, choices, rubric, weight) of each question.
MC = [{"id": "a", "text": "A"}, {"id": "b", "text": "B"}, {"id": "c", "text": "C"}]
FREQUENCY = [{"id": "never", "text": "Never"}, {"id": "weekly", "text": "Weekly"},
             {"id": "daily", "text": "Daily"}]  # fmt: skip
ESSAY_RUBRIC = {
    "criteria": [
        {
            "name": "accuracy",
            "description": "Explains the idea correctly.",
            "levels": [
                {"score": 0, "descriptor": "wrong or missing"},
                {"score": 2, "descriptor": "partly right"},
                {"score": 4, "descriptor": "correct and precise"},
            ],
            "keywords": ["index", "sorted", "lookup", "trade-off", "write"],
        },
        {
            "name": "clarity",
            "description": "Reads clearly, with an example.",
            "levels": [
                {"score": 0, "descriptor": "hard to follow"},
                {"score": 2, "descriptor": "clear, with an example"},
            ],
            "keywords": ["example", "for instance"],
        },
    ],
}


def questions_for(role: str) -> list[dict[str, Any]]:
    skills = list(next(r for r in ROLES if r["name"] == role)["skills_profile"])
    first, second, third = skills[0], skills[1], skills[2]
    return [
        {"question_type": "multiple_choice", "prompt": f"Which is true of {words(first)}? (1)",
         "choices": MC, "rubric": {"correct": ["a"], "skills": [first]}, "weight": 1},
        {"question_type": "multiple_choice", "prompt": f"Which apply to {words(second)}?",
         "choices": MC, "weight": 2,
         "rubric": {"correct": ["a", "b"], "multi_select": True, "negative_marking": 0.5,
                    "skills": [second]}},
        {"question_type": "multiple_choice", "prompt": f"Which is true of {words(third)}?",
         "choices": MC, "rubric": {"correct": ["c"], "skills": [third]}, "weight": 1},
        {"question_type": "profile", "prompt": f"How often do you use {words(first)}?",
         "choices": FREQUENCY, "weight": 1,
         "rubric": {"skill": first, "mapping": {"never": 0, "weekly": 50, "daily": 90}}},
        {"question_type": "essay", "prompt": "Explain what a database index is for, and its cost.",
         "rubric": {**ESSAY_RUBRIC, "skills": [skills[1]]}, "weight": 3},
    ]  # fmt: skip


ESSAYS = [
    "An index keeps keys sorted, so a lookup reads a few pages instead of the whole table. "
    "For instance, an index on email makes login fast. The trade-off: every write updates it.",
    "Indexes make queries faster.",
    "An index is a sorted copy of a column used for lookup; writes pay to keep it current.",
    "I am not sure. Maybe it is like a table of contents for example.",
]


def answers_for(questions: list[dict[str, Any]], rng: random.Random) -> list[Any]:
    """One plausible user's answers: some right, some wrong, one essay."""
    chosen: list[Any] = []
    for question in questions:
        kind = question["question_type"]
        if kind == "essay":
            chosen.append(rng.choice(ESSAYS))
        elif kind == "profile":
            chosen.append(rng.choice(["never", "weekly", "daily"]))
        elif question["rubric"].get("multi_select"):
            chosen.append(rng.choice([["a", "b"], ["a"], ["a", "c"], ["b"]]))
        else:
            chosen.append(rng.choice(["a", "b", "c"]))
    return chosen


TOPICS: dict[str, str] = {
    "sql": "SQL queries, joins, aggregates and window functions",
    "statistics": "descriptive statistics, distributions, hypothesis tests and regression",
    "data_visualization": "charts, dashboards and visual storytelling with data",
    "python": "Python programming: functions, modules, packaging and the standard library",
    "databases": "database design, indexing, transactions and query tuning",
    "testing": "automated testing: unit, integration and property-based tests",
    "security": "application security: authentication, OWASP risks and threat modelling",
    "cloud": "cloud infrastructure, containers and deployment pipelines",
    "machine_learning": "supervised learning, model evaluation and feature engineering",
    "communication": "writing, presenting and stakeholder communication",
    "project_management": "planning, estimation and agile delivery",
    "excel": "spreadsheets, pivot tables and formulas",
}
LEVELS = ["Foundations of", "Intermediate", "Advanced"]
FORMATS = [("Certificate", "a proctored certification"), ("Course", "a self-paced online course"),
           ("Bootcamp", "an intensive cohort bootcamp")]  # fmt: skip
PROVIDERS = ["Acme Academy", "DataWorks", "OpenLearn", "SkillForge"]


def credentials() -> list[dict[str, Any]]:
    """Every topic at every level in every format, from three of the providers; some
    paired with a second skill (12 x 3 x 3 x 3 = 324)."""
    rng = random.Random(7)
    topics = list(TOPICS)
    items = []
    for skill, about in TOPICS.items():
        for level in LEVELS:
            for name, kind in FORMATS:
                for provider in rng.sample(PROVIDERS, 3):
                    extra = rng.choice([t for t in topics if t != skill])
                    pair = rng.random() < 0.4
                    items.append(
                        {
                            "title": f"{level} {title(skill)} {name} ({provider})",
                            "description": f"{kind.capitalize()} in {about}"
                            + (f", with a module on {words(extra)}." if pair else "."),
                            "skills": [skill, extra] if pair else [skill],
                            "provider": provider,
                            "metadata": {"hours": rng.choice([8, 20, 40, 120])},
                        }
                    )
    return items


def title(skill: str) -> str:
    return {"sql": "SQL", "excel": "Excel"}.get(skill, words(skill).title())


def words(skill: str) -> str:
    return skill.replace("_", " ")
