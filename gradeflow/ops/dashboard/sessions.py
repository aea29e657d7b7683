"""The dashboard's session: a signed, HttpOnly, SameSite cookie holding a client id and
a CSRF token, and the checks every POST passes.

The cookie never holds the API key. It is signed (itsdangerous) with a secret the
browser never sees, so it cannot be forged, and it expires after
``GRADEFLOW_DASHBOARD_SESSION_HOURS``. It proves only who logged in: every request
reads the client again (:mod:`gradeflow.ops.dashboard.access`), so a revoked key's
session stops working at once.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from gradeflow.settings import Settings

COOKIE = "gradeflow_ops"
#: Every dashboard URL lives under this path, and so does the cookie.
PREFIX = "/ops"
_SALT = "gradeflow.ops.session"
SECRET_FILE = "dashboard-secret"


@dataclass(frozen=True)
class SessionData:
    client_id: str
    csrf: str


class Signer:
    """Signs and reads session cookies for one secret and lifetime."""

    def __init__(self, secret: str, max_age_seconds: float) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT)
        self.max_age_seconds = max_age_seconds

    def dumps(self, data: SessionData) -> str:
        return self._serializer.dumps({"c": data.client_id, "t": data.csrf})

    def loads(self, cookie: str) -> SessionData | None:
        """The session in ``cookie``; ``None`` if it is forged, tampered with or expired."""
        try:
            raw = self._serializer.loads(cookie, max_age=int(self.max_age_seconds))
        except BadSignature:  # SignatureExpired is a BadSignature too
            return None
        if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) for k in "ct"):
            return None
        return SessionData(client_id=raw["c"], csrf=raw["t"])


def signer_for(settings: Settings) -> Signer:
    return Signer(session_secret(settings), settings.dashboard_session_hours * 3600)


def session_secret(settings: Settings) -> str:
    """``GRADEFLOW_DASHBOARD_SECRET``, else the machine's own, made once under the home
    directory so that every web process of the machine signs alike."""
    if settings.dashboard_secret is not None:
        return settings.dashboard_secret.get_secret_value()
    return shared_secret(settings.home / SECRET_FILE)


def shared_secret(path: Path) -> str:
    """The secret in ``path``, created (mode 0600) by whichever process comes first.

    The new secret is written to a private temporary file and linked into place, so
    a process racing this one reads either nothing (and links its own, which fails)
    or a whole secret, never half of one.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_urlsafe(48))
        try:
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            temporary.unlink()
    return path.read_text().strip()


def new_session(client_id: str) -> SessionData:
    return SessionData(client_id=client_id, csrf=secrets.token_urlsafe(32))


def read_session(request: Request, signer: Signer) -> SessionData | None:
    cookie = request.cookies.get(COOKIE)
    return signer.loads(cookie) if cookie else None


def set_session_cookie(
    response: Response, request: Request, signer: Signer, data: SessionData
) -> None:
    response.set_cookie(
        COOKIE,
        signer.dumps(data),
        max_age=int(signer.max_age_seconds),
        path=PREFIX,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path=PREFIX, httponly=True, samesite="lax", secure=request.url.scheme == "https"
    )


def csrf_matches(expected: str, submitted: str | None) -> bool:
    """Constant-time: the comparison leaks nothing about the token."""
    return bool(submitted) and hmac.compare_digest(expected.encode(), (submitted or "").encode())


def same_origin(request: Request) -> bool:
    """True when the POST comes from a page of this site: its ``Origin`` (or, lacking
    one, its ``Referer``) names this very scheme, host and port. Browsers send one of
    the two with every form post and fetch; a request with neither is refused."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed or claimed == "null":
        return False
    parts = urlsplit(claimed)
    own = urlsplit(str(request.base_url))
    return (parts.scheme, parts.netloc) == (own.scheme, own.netloc)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a dashboard path, never another site."""
    if not target or not target.startswith(PREFIX) or target.startswith("//"):
        return PREFIX
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return PREFIX
    return target
