"""The pure parts of webhook delivery: signing, the schedule, the SSRF guard, the verdict."""

from __future__ import annotations

import ipaddress
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gradeflow.jobs.webhooks import signing, ssrf
from gradeflow.jobs.webhooks.delivery import decide_delivery
from gradeflow.jobs.webhooks.http import Answer
from gradeflow.jobs.webhooks.schedule import next_delay, parse_retry_after
from gradeflow.settings import Settings

NOW = datetime.now(UTC)
SCHEDULE = [0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]
OPEN = ssrf.Policy.of(allow_http=True, allow_private=False, allow_list=[])


def test_a_new_secret_is_whsec_and_base64_of_24_to_64_bytes() -> None:
    import base64

    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert 24 <= len(base64.b64decode(secret.removeprefix("whsec_"))) <= 64
    assert signing.new_secret() != secret


def test_the_standardwebhooks_library_verifies_our_headers() -> None:
    secret = signing.new_secret()
    body = signing.body_of({"type": "assessment.completed", "timestamp": "t", "data": {"a": 1}})
    # Signed now: the library refuses timestamps over 5 minutes old, and NOW is
    # taken when the module is collected, possibly long before this test runs.
    headers = signing.signed_headers("msg_1", datetime.now(UTC), body, [secret])
    assert Webhook(secret).verify(body, headers)["data"] == {"a": 1}


def test_during_a_rotation_the_old_and_the_new_secret_each_verify_alone() -> None:
    new, old = signing.new_secret(), signing.new_secret()
    body = signing.body_of({"x": 1})
    headers = signing.signed_headers("msg_1", datetime.now(UTC), body, [new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(body, headers)
    Webhook(old).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)


def test_the_body_is_the_same_bytes_for_the_same_payload() -> None:
    assert signing.body_of({"b": 1, "a": [1, 2]}) == signing.body_of({"a": [1, 2], "b": 1})
    event = uuid.uuid4()
    assert signing.message_id(event) == signing.message_id(event)


@pytest.mark.parametrize("attempt", range(1, 8))
def test_delays_follow_the_schedule_within_20_percent(attempt: int) -> None:
    delay = next_delay(attempt, SCHEDULE, 0.2, None, 36000.0, random.Random(attempt))
    assert delay is not None
    assert SCHEDULE[attempt] * 0.8 <= delay <= SCHEDULE[attempt] * 1.2


def test_no_delay_after_the_last_attempt() -> None:
    assert next_delay(8, SCHEDULE, 0.2, None, 36000.0, random.Random(1)) is None


def test_retry_after_wins_when_longer_and_is_clamped() -> None:
    assert next_delay(1, SCHEDULE, 0.0, 60.0, 36000.0, random.Random(1)) == 60.0
    assert next_delay(1, SCHEDULE, 0.0, 10**9, 3600.0, random.Random(1)) == 3600.0
    assert next_delay(3, SCHEDULE, 0.0, 1.0, 3600.0, random.Random(1)) == 1800.0


def test_retry_after_parses_seconds_and_http_dates() -> None:
    assert parse_retry_after("120", NOW) == 120.0
    later = (NOW + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    parsed = parse_retry_after(later, NOW)
    assert parsed is not None and 88 <= parsed <= 91
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "CGNAT"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("fc00::1", "unique-local"),
        ("fd12:3456::1", "unique-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("::ffff:127.0.0.1", "loopback"),
        # Translated and tunnelled IPv6 reaches the IPv4 address it embeds.
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("64:ff9b:1::a00:1", "private"),  # local-use NAT64 of 10.0.0.1
        ("2002:c0a8:101::1", "private"),  # 6to4 of 192.168.1.1
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),  # Teredo, client 127.0.0.1
        ("240.0.0.1", "reserved"),
    ],
)
def test_every_non_public_class_is_refused(address: str, kind: str) -> None:
    ip = ipaddress.ip_address(address)
    assert ssrf.address_class(ip) == kind
    assert ssrf.refusal(ip, OPEN) is not None


def test_public_addresses_pass() -> None:
    public = ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8",
              "64:ff9b::5db8:d822")  # NAT64 of a public address  # fmt: skip
    for address in public:
        assert ssrf.refusal(ipaddress.ip_address(address), OPEN) is None


def test_allow_private_and_the_allow_list_let_private_addresses_through() -> None:
    private = ssrf.Policy.of(allow_http=True, allow_private=True, allow_list=[])
    listed = ssrf.Policy.of(allow_http=True, allow_private=False, allow_list=["10.0.0.0/8"])
    assert ssrf.refusal(ipaddress.ip_address("127.0.0.1"), private) is None
    assert ssrf.refusal(ipaddress.ip_address("10.9.9.9"), listed) is None
    assert ssrf.refusal(ipaddress.ip_address("192.168.1.1"), listed) is not None


def test_a_name_resolving_to_loopback_is_refused() -> None:
    with pytest.raises(ssrf.UnsafeTarget, match="loopback"):
        ssrf.vet("http://localhost:8080/hook", OPEN)


def test_only_https_unless_http_is_allowed() -> None:
    strict = ssrf.Policy.of(allow_http=False, allow_private=True, allow_list=[])
    with pytest.raises(ssrf.UnsafeTarget, match="https"):
        ssrf.vet("http://127.0.0.1/hook", strict)
    with pytest.raises(ssrf.UnsafeTarget):
        ssrf.vet("ftp://127.0.0.1/hook", OPEN)
    with pytest.raises(ssrf.UnsafeTarget, match="credentials"):
        ssrf.vet("https://user:pw@127.0.0.1/hook", strict)


SETTINGS = Settings(_env_file=None)


def test_2xx_delivers_and_410_disables_at_once() -> None:
    ok = decide_delivery(Answer(204, 1), 1, "scheduled", None, NOW, SETTINGS, random.Random(1))
    assert (ok.event_status, ok.succeeded, ok.retry_in) == ("delivered", True, None)
    gone = decide_delivery(Answer(410, 1), 1, "scheduled", None, NOW, SETTINGS, random.Random(1))
    assert gone.event_status == "failed" and gone.disable_reason and gone.retry_in is None


@pytest.mark.parametrize("status", [301, 302, 400, 429, 500, 503, None])
def test_other_answers_retry_on_the_schedule(status: int | None) -> None:
    answer = Answer(status, 1, error=None if status else "connection refused")
    v = decide_delivery(answer, 1, "scheduled", None, NOW, SETTINGS, random.Random(1))
    assert v.event_status == "pending" and v.retry_in is not None and 4 <= v.retry_in <= 6
    last = decide_delivery(answer, 8, "scheduled", None, NOW, SETTINGS, random.Random(1))
    assert last.event_status == "failed" and last.retry_in is None


def test_a_manual_attempt_is_tried_once() -> None:
    v = decide_delivery(Answer(500, 1), 1, "manual", None, NOW, SETTINGS, random.Random(1))
    assert v.event_status == "failed" and v.retry_in is None


def test_failing_longer_than_the_span_disables() -> None:
    recent = NOW - timedelta(days=4)
    old = NOW - timedelta(days=5, minutes=1)
    keep = decide_delivery(Answer(500, 1), 2, "scheduled", recent, NOW, SETTINGS, random.Random(1))
    drop = decide_delivery(Answer(500, 1), 2, "scheduled", old, NOW, SETTINGS, random.Random(1))
    assert keep.disable_reason is None and keep.retry_in is not None
    assert drop.disable_reason is not None and drop.event_status == "failed"
