"""Browser secrets: a session cookie's value, a sign-in flow's, and what is derived from them.

Each is 256 random bits; the database keeps only its SHA-256 (a fast hash is right: there is
nothing to guess). The CSRF token is derived from the session cookie's value, so it needs no
storage, rotates with the session id, and is worth nothing without the cookie it belongs to.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_BYTES = 32


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def derive(secret: str, purpose: str) -> str:
    """A value bound to ``secret`` for one purpose (``csrf``, ``state``, ``nonce``, ``pkce``)."""
    mac = hmac.new(secret.encode(), b"seedos:" + purpose.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def plausible(value: str | None) -> bool:
    """A cookie value that could be one of ours (43 URL-safe characters), before any lookup."""
    return value is not None and len(value) == 43 and value.isascii()
