"""How providers sign their webhook deliveries, each checked as its provider documents it.

- ``github``: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``.
- ``stripe``: ``Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "t.body")>[,v1=...]``
  (several ``v1`` while a secret is rolled), the time within the tolerance.
- ``shopify``: ``X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(secret, body)>``.
- ``slack``: ``X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:ts:body")>`` with
  ``X-Slack-Request-Timestamp: <unix time>`` within the tolerance.

Digests are compared in constant time; the body is the bytes as they arrived.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

# where each scheme's deliveries say their id and their event's type, unless a definition says
# otherwise: ("header", name) or ("select", JMESPath into the JSON body)
DEFAULT_ID = {
    "github": ("header", "x-github-delivery"),
    "stripe": ("select", "id"),
    "shopify": ("header", "x-shopify-webhook-id"),
    "slack": ("select", "event_id"),
}
DEFAULT_TYPE = {
    "github": ("header", "x-github-event"),
    "stripe": ("select", "type"),
    "shopify": ("header", "x-shopify-topic"),
    "slack": ("select", "event.type"),
}


@dataclass
class Refused(Exception):
    """A delivery not taken: why (a short code), its HTTP status, and what to show."""

    reason: str
    status: int
    detail: str


def _hmac(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def _timely(stamp: str | None, now: float, tolerance: int) -> int:
    try:
        at = int(stamp or "")
    except ValueError:
        raise Refused("bad_signature", 401, "the signature's timestamp is missing") from None
    if abs(now - at) > tolerance:
        raise Refused("stale", 401, f"signed {int(now - at)} s ago; at most {tolerance} s is"
                      " taken (a replay, or a clock far off)")  # fmt: skip
    return at


def verify(scheme: str, secret: str, headers: Mapping[str, str], body: bytes, *, now: float,
           tolerance: int = 300) -> None:  # fmt: skip
    """Raise :class:`Refused` unless ``body`` carries ``scheme``'s valid signature with
    ``secret`` (``headers`` with lower-case names)."""
    if scheme == "github":
        given = headers.get("x-hub-signature-256", "")
        expected = "sha256=" + _hmac(secret, body).hex()
        ok = hmac.compare_digest(given.encode(), expected.encode())
    elif scheme == "shopify":
        given = headers.get("x-shopify-hmac-sha256", "")
        expected = base64.b64encode(_hmac(secret, body)).decode()
        ok = hmac.compare_digest(given.encode(), expected.encode())
    elif scheme == "stripe":
        parts: dict[str, list[str]] = {}
        for item in headers.get("stripe-signature", "").split(","):
            key, _, value = item.strip().partition("=")
            parts.setdefault(key, []).append(value)
        stamp = (parts.get("t") or [None])[0]
        if not parts.get("v1") or stamp is None:
            raise Refused("bad_signature", 401, "no Stripe-Signature with t= and v1=")
        expected = _hmac(secret, stamp.encode() + b"." + body).hex()
        ok = any(hmac.compare_digest(v.encode(), expected.encode()) for v in parts["v1"])
        if ok:
            _timely(stamp, now, tolerance)
    elif scheme == "slack":
        stamp = headers.get("x-slack-request-timestamp")
        given = headers.get("x-slack-signature", "")
        expected = "v0=" + _hmac(secret, b"v0:" + (stamp or "").encode() + b":" + body).hex()
        ok = hmac.compare_digest(given.encode(), expected.encode())
        if ok:
            _timely(stamp, now, tolerance)
    else:
        raise Refused("not_configured", 404, f"no webhook scheme {scheme!r}")
    if not ok:
        raise Refused("bad_signature", 401, "the signature does not match this install's secret")


def sign(scheme: str, secret: str, body: bytes, *, now: float) -> dict[str, str]:
    """The headers ``scheme`` signs ``body`` with (the tests' and benches' provider side)."""
    if scheme == "github":
        return {"X-Hub-Signature-256": "sha256=" + _hmac(secret, body).hex()}
    if scheme == "shopify":
        return {"X-Shopify-Hmac-Sha256": base64.b64encode(_hmac(secret, body)).decode()}
    stamp = str(int(now))
    if scheme == "stripe":
        digest = _hmac(secret, stamp.encode() + b"." + body).hex()
        return {"Stripe-Signature": f"t={stamp},v1={digest}"}
    if scheme == "slack":
        digest = _hmac(secret, b"v0:" + stamp.encode() + b":" + body).hex()
        return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}
    raise ValueError(scheme)
