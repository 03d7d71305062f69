"""Bounded work before authentication, in front of every gateway route.

A request declaring a body over ``SEEDOS_GATEWAY_MAX_BODY_BYTES`` is refused from its headers
alone (413), on every path, known or not (uvicorn refuses a WebSocket handshake with a body
itself, 400, before any application sees it); a chunked one is counted as it arrives and
refused once past the limit, the rest left unread. On the gateway's own routes a
body is read only after its sender is authenticated (FastAPI reads and parses a body before a
route's dependencies run), then checked for JSON nesting deeper than
``SEEDOS_GATEWAY_MAX_JSON_DEPTH`` (422 ``json_too_deep``) before anything parses it. The proxy
authenticates before it reads, and the services parse what it forwards.

A refusal of a declared body up to twice the limit leaves the connection open: uvicorn reads
and discards the rest, so a client that reads only after sending everything (httpx, requests)
gets the 413 rather than a reset connection. Every other refusal, and any answer that goes out
before the body was read to its end, says ``Connection: close``: the server closes the
connection instead of reading a body it does not want for as long as it keeps coming (a client
that reads only after sending may then see the connection reset; curl and browsers read the
answer while they send).

Written as plain ASGI, not ``BaseHTTPMiddleware``: a request without a body (every proxied GET)
costs one look at its headers and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.errors import InvalidRequest, PayloadTooLarge, SeedosError, error_response
from gateway.json_depth import deeper_than

_CLOSE = (b"connection", b"close")
# A declared body over the limit by at most this factor is read and discarded after the 413
# (so simple clients see the answer); a larger one closes the connection.
DRAIN_FACTOR = 2


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
            drained = 0 <= length <= DRAIN_FACTOR * limit
            await _refuse(self.limits.too_large(limit), scope, receive, send, close=not drained)
            return
        if scope["type"] == "websocket":  # a handshake's body never reaches the application
            await self.app(scope, receive, send)
            return
        if self.authenticate:
            await self._authenticated_then_read(scope, receive, send, limit)
        else:
            await self._counted(scope, receive, send, limit)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Passes the body through as it arrives, counting it: past ``limit`` the application's
        next read raises :class:`PayloadTooLarge` (the proxy answers 413)."""
        received, complete = 0, False

        async def counting_receive() -> Message:
            nonlocal received, complete
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise self.limits.too_large(limit)
                complete = not message.get("more_body", False)
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not complete:
                message["headers"] = [*message.get("headers", ()), _CLOSE]
            await send(message)

        await self.app(scope, counting_receive, closing_send)

    async def _authenticated_then_read(
        self, scope: Scope, receive: Receive, send: Send, limit: int
    ) -> None:
        try:
            if scope["path"] not in self.public:
                authenticator = scope["app"].state.authenticator
                principal = await authenticator.authenticate(HTTPConnection(scope))
                scope.setdefault("state", {})["principal"] = principal
            body = await self._read(receive, limit)
            if body is None:
                return  # the client went away
            if deeper_than(body, self.limits.max_json_depth):
                depth = self.limits.max_json_depth
                raise JsonTooDeep(f"the body nests more than {depth} levels deep", limit=depth)
        except SeedosError as exc:
            await _refuse(exc, scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # only http.disconnect is left to come
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive, limit: int) -> bytes | None:
        """The whole body, refused once past ``limit``; None if the client disconnected."""
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > limit:
                raise self.limits.too_large(limit)
            more = message.get("more_body", False)
        return bytes(body)


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
