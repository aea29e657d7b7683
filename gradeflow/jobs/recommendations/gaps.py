"""Where a user stands against a role, and the retrieval query it turns into.

Pure functions: the recommendation job reads the role's ``skills_profile`` and the
assessment's ``skill_scores`` (both 0-100) and hands them here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: The query names at most this many skills: past the weakest few, more names only
#: blur the embedding towards the role's centre.
QUERY_SKILLS = 5


@dataclass(frozen=True)
class SkillGap:
    """One skill of the role's profile the user is below target on."""

    skill: str
    target: float
    #: The assessment's score for the skill; ``None`` when no question measured it.
    score: float | None

    @property
    def gap(self) -> float:
        return self.target - (self.score or 0.0)


def skill_gaps(profile: Mapping[str, float], scores: Mapping[str, float]) -> list[SkillGap]:
    """The profile's skills the user is below target on, weakest first (ties by name).

    A skill no question measured counts as a score of 0: the assessment gives no
    evidence the user has it.
    """
    gaps = [
        SkillGap(skill, float(target), scores.get(skill))
        for skill, target in profile.items()
        if float(target) - (scores.get(skill) or 0.0) > 0
    ]
    return sorted(gaps, key=lambda g: (-g.gap, g.skill))


def skill_phrase(skill: str) -> str:
    """``data_modeling`` → ``data modeling``: skill keys read as words to an embedder."""
    return " ".join(skill.replace("_", " ").replace("-", " ").split())


def query_text(
    gaps: Sequence[SkillGap], themes: Sequence[str] = (), *, role_skills: Sequence[str] = ()
) -> str:
    """The text embedded to search the credential catalog.

    Names the weakest skills first (the embedders weigh early words no more than
    late ones, but a reader of ``rag_traces`` sees the priority), then the essays'
    themes. A user already at target on every skill gets a query for the role's
    skills instead, so they still see what would take them further.
    """
    skills = [g.skill for g in gaps[:QUERY_SKILLS]] or list(role_skills[:QUERY_SKILLS])
    words = [skill_phrase(s) for s in skills]
    parts = []
    if words:
        parts.append("Learn " + ", ".join(words) + ".")
        parts.append("Skills: " + ", ".join(words))
    if themes:
        parts.append("Topics: " + "; ".join(t.strip() for t in themes if t.strip()))
    return "\n".join(parts)
