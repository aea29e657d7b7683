"""Standard Webhooks signing: ``whsec_`` secrets and the three ``webhook-*`` headers.

The signature is the ``standardwebhooks`` library's own, so a receiver using
it (or ``svix``) verifies our requests unchanged.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"
#: Random bytes in a new secret (the specification allows 24 to 64).
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh ``whsec_<base64>`` signing secret."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def message_id(event_id: uuid.UUID) -> str:
    """The ``webhook-id`` of an event: the same on every attempt, so receivers de-duplicate."""
    return f"msg_{event_id.hex}"


def body_of(payload: dict[str, Any]) -> str:
    """The exact body sent for ``payload``: compact, keys sorted, so every attempt of an
    event sends the same bytes even though Postgres keeps the payload as jsonb."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def signed_headers(
    msg_id: str, timestamp: datetime, body: str, signing_secrets: Sequence[str]
) -> dict[str, str]:
    """The Standard Webhooks headers; one ``v1,…`` signature per secret, space-separated
    (during a rotation the old and the new secret both sign)."""
    signatures = [Webhook(secret).sign(msg_id, timestamp, body) for secret in signing_secrets]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
    }
