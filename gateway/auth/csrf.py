"""Cross-site request forgery: a request a session cookie authenticates must come from this site
when it changes anything, and so must a WebSocket opened with one.

The browser's ``Sec-Fetch-Site`` and ``Origin`` say where a request comes from, and the
``X-CSRF-Token`` header carries the token ``GET /api/v1/me`` gave (derived from the cookie, see
:mod:`gateway.sessions.tokens`). The sign-in's forms are checked by :func:`cross_site` alone
(they carry no session yet, or their token as a form field)."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import HTTPConnection

from common.errors import Forbidden
from gateway.auth import failures
from gateway.sessions import tokens

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"


class CsrfRefused(Forbidden):
    code, title = "csrf_refused", "Cross-site request refused"


_CROSS_SITE = {  # what a refusal says, by cross_site()'s reason
    "csrf_cross_site": "a {site} request may not change anything with this session",
    "csrf_origin": "the request's Origin is not this site",
    "csrf_no_origin": "the browser did not say where the request comes from",
}


def cross_site(headers: Mapping[str, str], public_origin: str) -> str | None:
    """Why an unsafe request may not come from a browser page of this site (a reason of
    :data:`_CROSS_SITE`), or None: ``Sec-Fetch-Site``, when sent, must be ``same-origin``,
    ``Origin``, when sent, this site's, and at least one of them must be sent."""
    site, origin = headers.get("sec-fetch-site"), headers.get("origin")
    if site is not None and site != "same-origin":
        return "csrf_cross_site"
    if origin is not None and origin != public_origin:
        return "csrf_origin"
    if site is None and origin is None:
        return "csrf_no_origin"
    return None


def check_same_site(conn: HTTPConnection, secret: str, *, public_origin: str) -> None:
    """A WebSocket or unsafe request authenticated by the session cookie ``secret`` must come
    from this site (:class:`CsrfRefused` otherwise)."""
    headers = conn.headers
    if conn.scope["type"] == "websocket":
        if headers.get("origin") != public_origin:
            failures.record("session", "websocket_cross_origin")
            raise CsrfRefused("a WebSocket with a session must be opened from this site")
        return
    if conn.scope["method"] in SAFE_METHODS:
        return
    if reason := cross_site(headers, public_origin):
        failures.record("session", reason)
        raise CsrfRefused(_CROSS_SITE[reason].format(site=headers.get("sec-fetch-site")))
    if not tokens.same(headers.get(CSRF_HEADER), tokens.derive(secret, "csrf")):
        failures.record("session", "csrf_token")
        raise CsrfRefused(
            "send the session's CSRF token (GET /api/v1/me, csrf_token) in X-CSRF-Token"
        )
