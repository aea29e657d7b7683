"""What one grading call cost, from the server's ``usage`` and the dated price table.

Some OpenAI-compatible servers return no ``usage``; the tokens are then
estimated from the text (about four characters a token, plus each message's
framing) and the cost is marked ``estimated``. A model missing from the price
table gets no cost (None), never a guess of its price.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from gradeflow.jobs.essays.llm import Usage
from gradeflow.settings import ModelPrice

CHARS_PER_TOKEN = 4
#: Tokens each chat message costs beyond its text (role and separators).
TOKENS_PER_MESSAGE = 4
MILLION = Decimal(1_000_000)
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Cost:
    prompt_tokens: int
    completion_tokens: int
    #: True when the tokens are an estimate (the server sent no usage).
    estimated: bool
    #: Exact cost in USD; None when the model has no price.
    usd: Decimal | None
    #: The price-table entry used, and the day its prices were read.
    priced_as: str | None = None
    price_as_of: str | None = None

    @property
    def cents(self) -> Decimal | None:
        """Rounded to the cent column's precision (hundredths of a cent)."""
        return None if self.usd is None else (self.usd * 100).quantize(CENT, ROUND_HALF_UP)

    def as_json(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "estimated": self.estimated,
            "usd": None if self.usd is None else str(self.usd),
            "priced_as": self.priced_as,
            "price_as_of": self.price_as_of,
        }


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimated_usage(messages: Sequence[Mapping[str, str]], answer: str | None) -> Usage:
    prompt = sum(estimate_tokens(m.get("content", "")) + TOKENS_PER_MESSAGE for m in messages)
    return Usage(prompt_tokens=prompt, completion_tokens=estimate_tokens(answer or ""))


def price_of(model: str, prices: Mapping[str, ModelPrice]) -> tuple[str, ModelPrice] | None:
    """The entry whose name is the longest prefix of ``model`` (``gpt-4o-mini-2024-07-18``
    is priced as ``gpt-4o-mini``, not ``gpt-4o``)."""
    names = [name for name in prices if model.startswith(name)]
    if not names:
        return None
    name = max(names, key=len)
    return name, prices[name]


def cost_of(
    model: str,
    usage: Usage | None,
    messages: Sequence[Mapping[str, str]],
    answer: str | None,
    prices: Mapping[str, ModelPrice],
) -> Cost:
    tokens = usage or estimated_usage(messages, answer)
    found = price_of(model, prices)
    if found is None:
        return Cost(tokens.prompt_tokens, tokens.completion_tokens, usage is None, None)
    name, price = found
    usd = (
        Decimal(tokens.prompt_tokens) * Decimal(str(price.input_per_mtok))
        + Decimal(tokens.completion_tokens) * Decimal(str(price.output_per_mtok))
    ) / MILLION
    return Cost(
        tokens.prompt_tokens,
        tokens.completion_tokens,
        usage is None,
        usd,
        priced_as=name,
        price_as_of=price.as_of.isoformat(),
    )
