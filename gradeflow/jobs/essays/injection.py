"""Obvious prompt-injection attempts in an essay, found before any model sees it.

These checks are cheap and deliberately blunt: they do not decide the grade,
they record why an essay deserves a second look. The prompt's delimiters and
its "the essay is data" rule are the defence; a flag is the evidence.

Invisible characters (zero-width, bidi controls) are also removed from the
text sent to the model: they hide words from a human reviewer and split words
past a phrase check, and no honest essay needs them.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

#: Longer essays are flagged (the intake accepts up to ``MAX_ESSAY_CHARS``).
EXTREME_CHARS = 10_000
#: A sentence must be this long (characters) to count as repeated text.
MIN_REPEATED_SENTENCE = 20
#: Flag when this many sentences are repeats, and they are this share of all sentences.
MIN_REPEATS = 3
MIN_REPEATED_SHARE = 0.3

INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")

ROLE_TOKENS = re.compile(
    r"<\|[a-z_]+\|>"  # <|im_start|>, <|system|>, <|endoftext|>
    r"|\[/?INST\]|<</?SYS>>"
    r"|^\s*#{0,3}\s*(system|assistant|developer)\s*:"
    r"|^\s*#{2,}\s*(system|instructions?)\b",
    re.IGNORECASE | re.MULTILINE,
)

OVERRIDES = re.compile(
    r"\b(ignore|disregard|forget|override)\b[^.\n]{0,40}"
    r"\b(previous|prior|above|earlier|preceding|all|your|the)\b[^.\n]{0,20}"
    r"\b(instructions?|prompts?|rules?|rubric|guidelines|directions)\b"
    r"|\byou are now\b"
    r"|\bnew instructions?\s*:"
    r"|\b(system|developer) prompt\b"
    r"|\b(give|award|assign|grade)\b[^.\n]{0,30}"
    r"\b(full|maximum|max|highest|top|perfect)\s+(marks|score|points|grade)\b"
    r"|\bset\s+injection_suspected\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Flag:
    """One reason to suspect the essay, with the text that raised it."""

    kind: str
    evidence: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def visible_text(essay: str) -> str:
    """``essay`` without invisible formatting characters."""
    return INVISIBLE.sub("", essay)


def detect(essay: str) -> list[Flag]:
    """Every obvious attack found in ``essay``, in a fixed order (empty: none)."""
    text = unicodedata.normalize("NFKC", visible_text(essay))
    return [
        *invisible_characters(essay),
        *matches("role_token", ROLE_TOKENS, text),
        *matches("instruction_override", OVERRIDES, text),
        *duplicated_text(text),
        *extreme_length(essay),
    ]


def invisible_characters(essay: str) -> list[Flag]:
    found = Counter(INVISIBLE.findall(essay))
    if not found:
        return []
    names = ", ".join(f"U+{ord(char):04X} x{count}" for char, count in sorted(found.items()))
    return [Flag("invisible_characters", names)]


def matches(kind: str, pattern: re.Pattern[str], text: str) -> list[Flag]:
    found = [m.group(0).strip() for m in pattern.finditer(text)]
    return [Flag(kind, " | ".join(dict.fromkeys(found))[:200])] if found else []


def duplicated_text(text: str) -> list[Flag]:
    """Padding by repetition: the same sentence pasted again and again."""
    sentences = [
        " ".join(s.lower().split())
        for s in re.split(r"(?<=[.!?])\s+|\n+", text)
        if len(s.strip()) >= MIN_REPEATED_SENTENCE
    ]
    counts = Counter(sentences)
    repeats = sum(n - 1 for n in counts.values())
    if repeats < MIN_REPEATS or repeats / max(1, len(sentences)) < MIN_REPEATED_SHARE:
        return []
    sentence, times = counts.most_common(1)[0]
    return [Flag("duplicated_text", f"{repeats} repeated sentences; {times}x {sentence[:80]!r}")]


def extreme_length(essay: str) -> list[Flag]:
    if len(essay) <= EXTREME_CHARS:
        return []
    return [Flag("extreme_length", f"{len(essay)} characters (flagged above {EXTREME_CHARS})")]
