"""The offline essay scorer: deterministic, no model, and labelled as such.

It grades when no LLM is configured, or when an essay's LLM job ended dead.
For each criterion it measures how much of the rubric the essay covers:

- keywords: the share of the criterion's ``keywords`` found in the essay
  (a keyword of several words must appear as that phrase);
- rubric terms: the share of the content words of the criterion's
  description and its top level's descriptor (what a full-marks answer is
  described as) found in the essay, counted as full at :data:`TERMS_FOR_FULL`.

Coverage is two parts keywords to one part terms (terms alone without
keywords), times a length factor so a bare list of keywords is not an essay,
and maps linearly onto the criterion's range. Words are compared lower-cased
and lightly stemmed. The same essay and rubric always get the same score.

The rubric model has no exemplar answers yet, so there is no embedding
similarity to them; when it gains them, this is where it belongs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from gradeflow.jobs.essays.grade import CriterionScore
from gradeflow.jobs.essays.prompt import criterion_range
from gradeflow.jobs.results import FALLBACK_MODEL_PREFIX
from gradeflow.jobs.rubrics import EssayCriterion, EssayRubric

FALLBACK_VERSION = "keywords-v1"
FALLBACK_MODEL = f"{FALLBACK_MODEL_PREFIX}{FALLBACK_VERSION}"
LABEL = "offline fallback scorer (keyword and rubric coverage, no LLM)"

#: Covering this share of a criterion's rubric terms counts as covering them all.
TERMS_FOR_FULL = 0.5
KEYWORD_WEIGHT = 2.0
TERM_WEIGHT = 1.0
#: Essays shorter than this (words) have their coverage scaled down in proportion.
FULL_LENGTH_WORDS = 40

#: Words too common to show that an essay covers a criterion (those of 3+ letters count).
COMMON_WORDS = """
    about above after all also and any are because been being between both but can could
    did does each for from had has have how into its itself more most nor not only other
    our out over own same should some such than that the their them then there these they
    this those through too under very was were what when where which while who why will
    with would you your
"""
STOPWORDS = frozenset(COMMON_WORDS.split())
SUFFIXES = ("ies", "ing", "ed", "es", "s", "ly")


def stem(word: str) -> str:
    """A crude, stable stemmer: enough to match "indexes" with "index"."""
    for suffix in SUFFIXES:
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def words(text: str) -> list[str]:
    return [stem(w) for w in re.findall(r"[^\W_]+", text.lower())]


def content_words(text: str) -> set[str]:
    return {w for w in words(text) if w not in STOPWORDS and len(w) > 2}


def contains_phrase(essay: list[str], phrase: list[str]) -> bool:
    size = len(phrase)
    return size > 0 and any(essay[i : i + size] == phrase for i in range(len(essay) - size + 1))


@dataclass(frozen=True)
class Coverage:
    keywords_found: list[str]
    keywords_missing: list[str]
    terms_found: int
    terms_total: int
    length_factor: float

    @property
    def value(self) -> float:
        """0 (nothing of the rubric) to 1 (all of it)."""
        terms = (
            min(1.0, self.terms_found / self.terms_total / TERMS_FOR_FULL)
            if self.terms_total
            else 0.0
        )
        keywords = len(self.keywords_found) + len(self.keywords_missing)
        if not keywords:
            return terms * self.length_factor
        share = len(self.keywords_found) / keywords
        mixed = (KEYWORD_WEIGHT * share + TERM_WEIGHT * terms) / (KEYWORD_WEIGHT + TERM_WEIGHT)
        return mixed * self.length_factor


def coverage(criterion: EssayCriterion, essay: list[str]) -> Coverage:
    top = max(criterion.levels, key=lambda level: level.score)
    terms = content_words(f"{criterion.description} {top.descriptor}")
    present = set(essay)
    keywords = criterion.keywords or []
    found = [k for k in keywords if contains_phrase(essay, words(k))]
    return Coverage(
        keywords_found=found,
        keywords_missing=[k for k in keywords if k not in found],
        terms_found=len(terms & present),
        terms_total=len(terms),
        length_factor=min(1.0, len(essay) / FULL_LENGTH_WORDS),
    )


def score_criterion(criterion: EssayCriterion, essay: list[str]) -> tuple[CriterionScore, Coverage]:
    low, high = criterion_range(criterion)
    covered = coverage(criterion, essay)
    exact = Decimal(low) + Decimal(str(round(covered.value, 6))) * (high - low)
    score = int(exact.quantize(Decimal(1), ROUND_HALF_UP))
    return CriterionScore(criterion.name, score, score, low, high, rationale(covered)), covered


def rationale(covered: Coverage) -> str:
    found = len(covered.keywords_found)
    keywords = found + len(covered.keywords_missing)
    parts = [f"Offline fallback, not an LLM: {covered.value:.0%} of the rubric covered"]
    if keywords:
        parts.append(f"keywords {found}/{keywords} ({', '.join(covered.keywords_found) or 'none'})")
    parts.append(f"rubric terms {covered.terms_found}/{covered.terms_total}")
    if covered.length_factor < 1:
        parts.append(f"short essay (x{covered.length_factor:.2f})")
    return "; ".join(parts) + "."


def grade_offline(
    rubric: EssayRubric, essay: str
) -> tuple[list[CriterionScore], list[dict[str, Any]]]:
    """Every criterion's score, and the coverage details behind each."""
    tokens = words(essay)
    scores, details = [], []
    for criterion in rubric.criteria:
        score, covered = score_criterion(criterion, tokens)
        scores.append(score)
        details.append(
            {
                "name": criterion.name,
                "coverage": round(covered.value, 4),
                "keywords_found": covered.keywords_found,
                "keywords_missing": covered.keywords_missing,
                "terms_found": covered.terms_found,
                "terms_total": covered.terms_total,
                "length_factor": round(covered.length_factor, 4),
            }
        )
    return scores, details
