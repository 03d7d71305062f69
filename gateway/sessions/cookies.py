"""The gateway's cookies: ``__Host-`` prefixed, so the browser keeps them to this origin and
path ``/`` (no Domain, always Secure), HttpOnly, SameSite=Lax.

Browsers keep Secure cookies over plain HTTP on loopback (127.0.0.1, localhost), which is
where development and the tests serve the gateway; anywhere else the public URL is https
(gateway/settings.py refuses plain HTTP elsewhere outside development)."""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie

from starlette.types import Scope

SESSION = "__Host-seedos_session"
LOGIN = "__Host-seedos_login"


def header(name: str, value: str, *, max_age: int) -> tuple[bytes, bytes]:
    """A ``Set-Cookie`` header; ``max_age`` 0 removes the cookie."""
    if max_age <= 0:
        value, max_age = "", 0
    text = f"{name}={value}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Lax"
    return b"set-cookie", text.encode("latin-1")


def read(scope: Scope, name: str) -> str | None:
    """One cookie's value from the request, or None (a malformed Cookie header counts as none)."""
    for key, raw in scope["headers"]:
        if key != b"cookie" or name.encode() not in raw:
            continue
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw.decode("latin-1"))
        except CookieError:
            continue
        if name in jar:
            return jar[name].value
    return None


def send_session(scope: Scope, value: str, *, max_age: int) -> None:
    """Have this request's answer set the session cookie to ``value``, replacing one queued
    before (a rotation by the authenticator): the browser must keep the last id, not both."""
    state = scope.setdefault("state", {})
    prefix = (SESSION + "=").encode()
    pending = [h for h in state.get("set_cookies", ()) if not h[1].startswith(prefix)]
    state["set_cookies"] = [*pending, header(SESSION, value, max_age=max_age)]


def session_value(scope: Scope) -> str | None:
    """The session cookie this request's answer sets (a rotation's), else the one it sent."""
    prefix = SESSION + "="
    for name, value in reversed(scope.get("state", {}).get("set_cookies", ())):
        text = value.decode("latin-1")
        if name == b"set-cookie" and text.startswith(prefix):
            return text.removeprefix(prefix).partition(";")[0]
    return read(scope, SESSION)
