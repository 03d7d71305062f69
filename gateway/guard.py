"""Bounded work before authentication, in front of every gateway route.

A request declaring a body over ``SEEDOS_GATEWAY_MAX_BODY_BYTES`` is refused from its headers
alone (413), on every path, known or not (uvicorn refuses a WebSocket handshake with a body
itself, 400, before any application sees it); a chunked one is counted as it arrives and
refused once past the limit. On the gateway's own routes a
body is read only after its sender is authenticated (FastAPI reads and parses a body before a
route's dependencies run), then checked for JSON nesting deeper than
``SEEDOS_GATEWAY_MAX_JSON_DEPTH`` (422 ``json_too_deep``) before anything parses it. The proxy
authenticates before it reads, and the services parse what it forwards.

After a refusal the connection is kept, so that a client that reads only after sending
everything (httpx, requests) gets the 413 or 401 rather than a reset connection, when what is
left of the body is small (64 KiB, thrown away by the server after the answer), or when its
sender authenticated and the rest, read and thrown away before the answer, ends within twice
the limit and a second. Otherwise the answer says ``Connection: close`` and the server closes
the connection instead of reading a body it does not want, so no one without a credential
holds a connection by trickling a large body (such a client may see the connection reset;
curl and browsers read the answer while they send).

Written as plain ASGI, not ``BaseHTTPMiddleware``: a request without a body (every proxied GET)
costs one look at its headers and nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.errors import InvalidRequest, PayloadTooLarge, SeedosError, error_response
from gateway.json_depth import deeper_than

_CLOSE = (b"connection", b"close")
# After a refusal, what is left of the body is read and thrown away (so a client that reads only
# after sending sees the answer, not a reset connection) when it is small, or when its sender
# authenticated and it ends within DRAIN_FACTOR times the limit; otherwise the connection is
# closed, so no one without a credential holds a connection by trickling a large body.
SMALL_BODY = 64 * 1024
DRAIN_FACTOR = 2
DRAIN_SECONDS = 1.0  # how long a refused body past its limit is waited for, at most


class JsonTooDeep(InvalidRequest):
    code, title = "json_too_deep", "JSON nested too deeply"


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int
    max_json_depth: int

    def too_large(self, limit: int | None = None) -> PayloadTooLarge:
        limit = self.max_body_bytes if limit is None else limit
        if limit == 0:
            return PayloadTooLarge("this path takes no request body", limit=0)
        return PayloadTooLarge(f"the request body exceeds {limit} bytes", limit=limit)


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """The declared Content-Length (-1 when unreadable) and whether a body follows."""
    length, chunked = None, False
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = int(value) if value.isdigit() else -1
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked or bool(length)


class RequestGuard:
    """ASGI layer: the limits above, and with ``authenticate`` the caller authenticated before
    the body is read (except on ``public`` paths); the principal is left in the scope's state,
    where :func:`gateway.deps.current_principal` takes it from. ``public`` maps each path served
    without a credential to the body it may read: 0 for those that take none."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: Limits,
        authenticate: bool,
        public: Mapping[str, int] = MappingProxyType({}),
    ) -> None:
        self.app = app
        self.limits = limits
        self.authenticate = authenticate
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        length, has_body = _framing(scope)
        if not has_body:  # GET, HEAD, DELETE as clients send them: nothing more to do
            await self.app(scope, receive, send)
            return
        limit = self.public.get(scope["path"], self.limits.max_body_bytes)
        if length is not None and not 0 <= length <= limit:
            keep = 0 <= length <= SMALL_BODY or (
                length <= DRAIN_FACTOR * limit and await self._known_sender(scope)
            )
            await _refuse(self.limits.too_large(limit), scope, receive, send, close=not keep)
            return
        if scope["type"] == "websocket":  # a handshake's body never reaches the application
            await self.app(scope, receive, send)
            return
        small = length is not None and length <= SMALL_BODY
        if self.authenticate:
            await self._authenticated_then_read(scope, receive, send, limit, small=small)
        else:
            await self._counted(scope, receive, send, limit, small=small)

    async def _counted(
        self, scope: Scope, receive: Receive, send: Send, limit: int, *, small: bool
    ) -> None:
        """Passes the body through as it arrives, counting it: past ``limit`` the application's
        next read raises :class:`PayloadTooLarge` (the proxy answers 413) once the rest is
        thrown away (:func:`_discard`). The proxy authenticates before it reads, so a body
        that is read came from a known sender (or to a public path, whose limit is small)."""
        received, complete = 0, False

        async def counting_receive() -> Message:
            nonlocal received, complete
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                more = message.get("more_body", False)
                if received > limit:
                    complete = not more or await _discard(receive, DRAIN_FACTOR * limit - received)
                    raise self.limits.too_large(limit)
                complete = not more
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not (complete or small):
                message["headers"] = [*message.get("headers", ()), _CLOSE]
            await send(message)

        await self.app(scope, counting_receive, closing_send)

    async def _authenticated_then_read(
        self, scope: Scope, receive: Receive, send: Send, limit: int, *, small: bool
    ) -> None:
        """Authenticate, then read the body (up to ``limit``) and check its depth. A refusal
        before the body was read keeps the connection (the rest thrown away by the server)
        only for a ``small`` body; past the limit, the authenticated sender's body is thrown
        away by :func:`_discard` before the answer."""
        read = False
        try:
            if scope["path"] not in self.public:
                authenticator = scope["app"].state.authenticator
                # routes that a suspended tenant's people still reach refuse the rest
                principal = await authenticator.authenticate(
                    HTTPConnection(scope), allow_suspended=True
                )
                scope.setdefault("state", {})["principal"] = principal
                # rate limited before its body is read (gateway/limits)
                await scope["app"].state.rate_limiter.admit(scope, principal)
            body = await self._read(receive, limit)
            if body is None:
                return  # the client went away
            read = True
            if deeper_than(body, self.limits.max_json_depth):
                depth = self.limits.max_json_depth
                raise JsonTooDeep(f"the body nests more than {depth} levels deep", limit=depth)
        except _BodyTooLarge as exc:
            await _refuse(exc.error, scope, receive, send, close=not exc.drained)
            return
        except SeedosError as exc:
            await _refuse(exc, scope, receive, send, close=not (read or small))
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # only http.disconnect is left to come
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _known_sender(self, scope: Scope) -> bool:
        """Whether the request carries a credential that authenticates (public paths: no)."""
        if scope["path"] in self.public:
            return False
        try:
            await scope["app"].state.authenticator.authenticate(HTTPConnection(scope))
        except SeedosError:
            return False
        return True

    async def _read(self, receive: Receive, limit: int) -> bytes | None:
        """The whole body, refused once past ``limit`` (:class:`_BodyTooLarge`, the rest
        thrown away by :func:`_discard`); None if the client disconnected."""
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                budget = DRAIN_FACTOR * limit - len(body)
                drained = not more or await _discard(receive, budget)
                raise _BodyTooLarge(self.limits.too_large(limit), drained=drained)
        return bytes(body)


class _BodyTooLarge(Exception):
    def __init__(self, error: PayloadTooLarge, *, drained: bool) -> None:
        self.error, self.drained = error, drained


async def _discard(receive: Receive, budget: int) -> bool:
    """Read and throw away the rest of a body past its limit, so that the client, once it has
    sent it, reads the answer on a connection that stays usable; whether it ended within
    ``budget`` bytes and :data:`DRAIN_SECONDS`. If not, the answer closes the connection."""
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while budget >= 0:
                message = await receive()
                if message["type"] != "http.request":
                    return False
                budget -= len(message.get("body", b""))
                if not message.get("more_body", False):
                    return budget >= 0
    except TimeoutError:
        pass
    return False


async def _refuse(
    exc: SeedosError, scope: Scope, receive: Receive, send: Send, *, close: bool = True
) -> None:
    """Answers ``exc`` and (with ``close``) closes the connection rather than read a body left
    unread. A WebSocket handshake gets the same answer where the server can send one (else
    403)."""
    response = error_response(exc, scope["path"])
    if scope["type"] == "websocket" and "websocket.http.response" not in scope.get(
        "extensions", {}
    ):
        await send({"type": "websocket.close", "code": 1008})
        return
    if close:
        response.headers["connection"] = "close"
    await response(scope, receive, send)
