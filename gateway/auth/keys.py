"""API key material. A key is shown once; only its SHA-256 hash is stored (keys carry 256 bits
of randomness, so a fast hash is the right one: there is nothing to brute-force)."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "sk_seedos_"
_DISPLAY_CHARS = 6


def generate() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def display_prefix(key: str) -> str:
    """The public start of a key, enough to recognise it in a listing."""
    return key[: len(KEY_PREFIX) + _DISPLAY_CHARS]


def looks_like_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX) and 20 < len(token) < 200
