"""What one API process remembers between submissions: full dispatch windows and
recently seen keys, each for a bounded time; and the e-mail check."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from gradeflow.api.keys import RecentKeys
from gradeflow.api.schemas.assessments import MAX_EMAIL_LENGTH, UserIn
from gradeflow.db.clients import KeyHolder
from gradeflow.jobs.enqueue import FullWindows


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_window_found_full_is_not_counted_again_until_the_recheck() -> None:
    clock = Clock()
    windows = FullWindows(recheck_seconds=1.0, clock=clock)
    client, other = uuid.uuid4(), uuid.uuid4()
    assert windows.send_now(client, "llm")

    windows.found_full(client, {"llm"})

    assert not windows.send_now(client, "llm")
    assert windows.send_now(client, "default")  # another queue of the client
    assert windows.send_now(other, "llm")  # another client on the queue
    clock.now += 0.999
    assert not windows.send_now(client, "llm")
    clock.now += 0.001
    assert windows.send_now(client, "llm")


def test_finding_no_window_full_changes_nothing() -> None:
    windows = FullWindows(clock=Clock())
    windows.found_full(None, set())
    assert windows.send_now(None, "default")


def test_a_key_is_remembered_for_its_ttl_and_forgotten_on_demand() -> None:
    clock = Clock()
    keys = RecentKeys(ttl_seconds=1.0, clock=clock)
    holder = KeyHolder(uuid.uuid4(), "submitter")
    assert keys.get("hash") is None

    keys.remember("hash", holder)

    assert keys.get("hash") == holder
    clock.now += 1.0
    assert keys.get("hash") is None
    keys.remember("hash", holder)
    keys.forget("hash")
    assert keys.get("hash") is None


def test_remembered_keys_stay_bounded() -> None:
    clock = Clock()
    keys = RecentKeys(ttl_seconds=1.0, clock=clock)
    holder = KeyHolder(uuid.uuid4(), "submitter")
    for n in range(5_000):
        keys.remember(f"h{n}", holder)
        clock.now += 0.01
    assert len(keys._seen) <= 1_101


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Ada@Example.com", "ada@example.com"),
        ("  bo.smith+tag@mail.example.org ", "bo.smith+tag@mail.example.org"),
        ("o'neil@x-y.io", "o'neil@x-y.io"),
    ],
)
def test_emails_are_checked_and_lower_cased(given: str, stored: str) -> None:
    assert UserIn(external_id="u", email=given).email == stored


@pytest.mark.parametrize(
    "email",
    [
        "nope",
        "a@b",  # a domain needs a dot
        "a b@example.com",
        "a@-example.com",
        "Ada <ada@example.com>",
        "é@example.com",
        "a@" + "x" * (MAX_EMAIL_LENGTH - 6) + ".com",
    ],
)
def test_bad_emails_are_refused_naming_the_reason(email: str) -> None:
    with pytest.raises(ValidationError, match="not a valid email address"):
        UserIn(external_id="u", email=email)
