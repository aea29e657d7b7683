"""Ranking retrieved credentials and saying why: pure functions.

**Confidence** (0-1, three decimals) combines what the pipeline knows about an item:

- ``similarity``: the cosine similarity of the gap query and the credential's
  text, clamped to [0, 1];
- ``overlap``: the share of the user's total skill gap (points below target,
  summed over the role's skills) that the credential's listed skills cover;
- ``judgement`` (only when a model ranked the items): its relevance, 0-10, / 10.

Without a model: ``0.5·similarity + 0.5·overlap``. With one:
``0.35·similarity + 0.35·overlap + 0.3·judgement``. Overlap counts as much as
similarity because it is the part a reader can check against the scores.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from gradeflow.db.recommendations import CredentialCard
from gradeflow.jobs.recommendations.gaps import SkillGap, skill_phrase

#: Items a recommendation offers, at most.
RECOMMENDED_ITEMS = 5
THOUSANDTH = Decimal("0.001")


@dataclass(frozen=True)
class Candidate:
    """One retrieved credential, and the trace that records its retrieval."""

    #: What the model sees instead of the trace's UUID (``T1``, ``T2``, …).
    label: str
    trace_id: uuid.UUID
    card: CredentialCard
    similarity: float


@dataclass(frozen=True)
class Ranked:
    candidate: Candidate
    confidence: Decimal
    rationale: str
    #: Traces the rationale rests on: the item's own first, then any it cites.
    trace_ids: list[uuid.UUID]


def covered_gaps(card: CredentialCard, gaps: Sequence[SkillGap]) -> list[SkillGap]:
    """The gaps whose skill the credential lists (same words, any case or separator)."""
    taught = {skill_phrase(s).lower() for s in card.skills}
    return [g for g in gaps if skill_phrase(g.skill).lower() in taught]


def overlap(card: CredentialCard, gaps: Sequence[SkillGap]) -> float:
    total = sum(g.gap for g in gaps)
    if total <= 0:
        return 0.0
    return sum(g.gap for g in covered_gaps(card, gaps)) / total


def confidence(similarity: float, overlap_share: float, judgement: float | None = None) -> Decimal:
    """See the module docstring."""
    sim = min(max(similarity, 0.0), 1.0)
    if judgement is None:
        value = 0.5 * sim + 0.5 * overlap_share
    else:
        value = 0.35 * sim + 0.35 * overlap_share + 0.3 * min(max(judgement, 0.0), 1.0)
    return Decimal(str(value)).quantize(THOUSANDTH, ROUND_HALF_UP)


def template_rationale(card: CredentialCard, gaps: Sequence[SkillGap]) -> str:
    """Why, in words a reader can check against their scores."""
    covered = covered_gaps(card, gaps)
    if covered:
        return f"Covers {join(gap_phrase(g) for g in covered)}."
    if gaps:
        return (
            "The closest match in the catalog to the skills you are building: "
            f"{join(skill_phrase(g.skill) for g in gaps[:3])}."
        )
    return "Goes further in the role's skills, where you already meet every target."


def gap_phrase(gap: SkillGap) -> str:
    score = "not measured" if gap.score is None else f"you scored {gap.score:g}"
    return f"{skill_phrase(gap.skill)} ({score}; the role targets {gap.target:g})"


def join(parts: Iterable[str]) -> str:
    words = list(parts)
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def rank_deterministic(
    candidates: Sequence[Candidate], gaps: Sequence[SkillGap], limit: int = RECOMMENDED_ITEMS
) -> list[Ranked]:
    """By confidence, then similarity, then title: the same inputs, the same list."""
    ranked = [
        Ranked(
            c,
            confidence(c.similarity, overlap(c.card, gaps)),
            template_rationale(c.card, gaps),
            [c.trace_id],
        )
        for c in candidates
    ]
    ranked.sort(key=lambda r: (-r.confidence, -r.candidate.similarity, r.candidate.card.title))
    return ranked[:limit]


def summary(role_name: str, gaps: Sequence[SkillGap], items: int) -> str:
    if not items:
        return f"No active credential in the catalog matches the skills of {role_name}."
    if not gaps:
        return f"You meet every skill target of {role_name}; {items} credentials go further."
    return (
        f"Your largest gaps for {role_name}: "
        f"{join(f'{skill_phrase(g.skill)} ({g.gap:g} below target)' for g in gaps[:3])}. "
        f"{items} credentials to close them, best first."
    )
