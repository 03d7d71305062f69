"""WebSocket upgrades on the proxied prefixes (the y-websocket sync endpoint today).

The caller authenticates with its API key (``Authorization``) or its session cookie (from
this origin only), as on plain requests. A browser cannot set headers on a WebSocket, so a
request carrying ``?ticket=`` and no ``Authorization`` is admitted by its ticket
(:mod:`gateway.ws_tickets`), consumed here before anything else happens, and then acts as the
credential the ticket was issued to: authenticated by it now, and the ticket left out of what
the upstream sees. Every socket is checked again every ``SEEDOS_GATEWAY_WS_RECHECK_SECONDS``
by the credential it was opened with (the ticket's, for a ticket socket): a key revoked or
expired, a session ended, expired or rotated (its role or tenant changed), a member removed or
a tenant suspended closes it with 1008.

The upstream WebSocket is opened (aiohttp, on a session of its own per upstream) before the
caller's is accepted: a refusal upstream is a refusal here (handshake answered 403, close code
1008 to the application), and an unreachable upstream 1013 (try again later). Then frames are
pumped both ways, each send awaited, so a slow side holds the other back instead of making
the gateway buffer; close codes (and reasons) are passed through in both directions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from urllib.parse import unquote_plus

import aiohttp
import structlog
from starlette.datastructures import State
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState

from common.errors import Forbidden, SeedosError, Unauthorized, error_response
from common.internal_auth import Principal
from common.observability import ROUTE_KEY
from gateway.limits.concurrency import admit_and_hold
from gateway.limits.limiter import response_fields
from gateway.proxy import ProxyEndpoint
from gateway.ws_tickets import service as tickets

MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # as connector_service accepts
log = structlog.get_logger(component="seedos.gateway.ws_proxy")

POLICY_VIOLATION, INTERNAL_ERROR, TRY_AGAIN_LATER = 1008, 1011, 1013
# Codes a peer reports but must never send (RFC 6455 section 7.4.1), and what to send instead.
_UNSENDABLE = {1005: 1000, 1006: INTERNAL_ERROR, 1015: INTERNAL_ERROR}
_SLOT = "seedos.slot"  # in the socket's state: the tenant's concurrency slot it holds


def make_ws_session(*, connect_timeout: float) -> aiohttp.ClientSession:
    """Unpooled (no connection limit, no keep-alive reuse) and without a read timeout: an idle
    sync connection is normal, and the service's pings tell a live one from a dead one."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=True),
        timeout=aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_connect=connect_timeout
        ),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def _sendable(code: int | None) -> int:
    if code is None:
        return 1000
    return _UNSENDABLE.get(code, code)


class WebSocketProxy:
    def __init__(self, endpoint: ProxyEndpoint) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Proxies the socket; the tenant's slot (gateway/limits) is held as long as it lasts."""
        try:
            await self._proxy(scope, receive, send)
        finally:
            scope["app"].state.tenant_slots.release(scope["state"].pop(_SLOT, None))

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        template, upstream_name = self.endpoint.match(scope["path"]) or ("", "")
        scope[ROUTE_KEY] = template
        state = scope["app"].state
        websocket = WebSocket(scope, receive, send)
        request_id = scope["state"]["request_id"]
        # An API key, or a browser's session cookie (from this origin only), or a ticket.
        ticket = credential = None
        if not any(name == b"authorization" for name, _ in scope["headers"]):
            ticket = websocket.query_params.get("ticket")
        try:
            if ticket is None:
                principal = await state.authenticator.authenticate(websocket)
                # checked again later without counting as use: an open socket alone does not
                # keep an idle session alive
                check = functools.partial(state.authenticator.authenticate, websocket, use=False)
            else:
                check, principal, credential = await _redeem(state, websocket, ticket)
        except SeedosError:
            await websocket.close(POLICY_VIOLATION)
            return
        scope["state"]["principal"] = principal
        try:  # rate limited as a request, and a slot of the tenant's held while it is open
            scope["state"][_SLOT] = await admit_and_hold(
                state.tenant_slots, state.rate_limiter, scope, principal, credential=credential
            )
        except SeedosError as exc:
            await _refuse(websocket, exc)
            return
        upstream = state.upstreams[upstream_name]
        token = state.proxy.signer.mint(principal, audience=upstream.name)
        url = "ws" + upstream.base_url.removeprefix("http") + scope["raw_path"].decode("latin-1")
        if query := _without_ticket(scope.get("query_string", b"").decode("latin-1")):
            url += "?" + query
        client = scope.get("client")
        headers = {
            "authorization": f"Bearer {token}",
            "x-request-id": request_id,
            "x-forwarded-for": client[0] if client else "",
            "x-forwarded-proto": "wss" if scope.get("scheme") == "wss" else "ws",
        }
        try:
            peer = await state.ws_sessions[upstream_name].ws_connect(
                url, headers=headers, protocols=scope.get("subprotocols") or (),
                max_msg_size=MAX_MESSAGE_BYTES, autoclose=False, autoping=True, heartbeat=20,
            )  # fmt: skip
        except aiohttp.WSServerHandshakeError as exc:
            log.info("ws_upstream_refused", upstream=upstream.name, status=exc.status)
            await websocket.close(POLICY_VIOLATION if exc.status in (401, 403) else INTERNAL_ERROR)
            return
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("ws_upstream_unreachable", upstream=upstream.name, error=type(exc).__name__)
            await websocket.close(TRY_AGAIN_LATER)
            return
        # checked again while the socket is open: revoking the key, ending the session,
        # changing the person's role or tenant or suspending the tenant closes it
        every = state.settings.ws_recheck_seconds
        watch = functools.partial(_credential_lost, check, principal, every=every)
        try:
            await websocket.accept(subprotocol=peer.protocol, headers=response_fields(scope))
            await _pump(websocket, peer, watch)
        finally:
            if not peer.closed:
                with contextlib.suppress(Exception):
                    await peer.close()


async def _refuse(websocket: WebSocket, exc: SeedosError) -> None:
    """A handshake refused by a limit: its 429 problem+json where the server lets the
    application answer a handshake (uvicorn does: websocket.http.response), else the socket
    accepted and closed with 1013 (try again later)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        response = error_response(exc, websocket.scope["path"])
        response.raw_headers.extend(response_fields(websocket.scope))  # when rate-checked
        await websocket.send_denial_response(response)
        return
    await websocket.accept()
    await websocket.close(TRY_AGAIN_LATER, exc.code)


async def _redeem(
    state: State, websocket: WebSocket, ticket: str
) -> tuple[Callable[[], Awaitable[Principal]], Principal, bytes]:
    """Consumes the ticket (refused for another path or integration, or used or expired), then
    authenticates the credential it was issued to: how to check that credential again, the
    caller it stands for now (in the ticket's tenant, or refused), and that credential's key."""
    integration_id = tickets.integration_of(websocket.scope["path"])
    if integration_id is None:
        raise tickets.InvalidTicket("tickets open the sync WebSocket only")
    async with state.db.connection() as conn:
        redeemed = await tickets.redeem(conn, ticket, integration_id=integration_id)
    authenticator = state.authenticator
    principal = await authenticator.authenticate_credential(redeemed.credential, websocket)
    check = functools.partial(  # later checks are not activity (see above)
        authenticator.authenticate_credential, redeemed.credential, websocket, use=False
    )
    if principal.tenant_id != redeemed.tenant_id:  # the session moved to another tenant
        raise tickets.InvalidTicket("the ticket is for another tenant")
    return check, principal, redeemed.credential


def _without_ticket(query: str) -> str:
    """A query string without its ``ticket`` parameters, the rest as sent."""
    kept = [p for p in query.split("&") if p and unquote_plus(p.split("=", 1)[0]) != "ticket"]
    return "&".join(kept)


async def _credential_lost(
    check: Callable[[], Awaitable[Principal]], opened_as: Principal, *, every: float
) -> None:
    """Returns once the socket's credential (``check`` authenticates it again: the request's
    key or cookie, or the one its ticket was issued to) is no longer accepted (a key revoked or
    expired, a session ended or expired, the tenant gone or suspended) or now acts as someone
    else (the session's tenant or role changed); a database that cannot answer right now keeps
    the socket open."""
    while True:
        await asyncio.sleep(every)
        try:
            now = await check()
        except (Unauthorized, Forbidden):
            return
        except SeedosError:  # unavailable: ask again next time
            continue
        if (now.tenant_id, now.role) != (opened_as.tenant_id, opened_as.role):
            return


async def _pump(
    websocket: WebSocket,
    peer: aiohttp.ClientWebSocketResponse,
    watch: Callable[[], Awaitable[None]],
) -> None:
    closing: dict[str, tuple[int, str]] = {}

    async def watching() -> None:
        await watch()
        closing["gateway"] = (POLICY_VIOLATION, "credentials revoked")

    async def to_upstream() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                closing["client"] = (_sendable(message.get("code")), message.get("reason") or "")
                return
            if (data := message.get("bytes")) is not None:
                await peer.send_bytes(data)
            elif (text := message.get("text")) is not None:
                await peer.send_str(text)

    async def to_client() -> None:
        while True:
            message = await peer.receive()
            if message.type == aiohttp.WSMsgType.BINARY:
                await websocket.send_bytes(message.data)
            elif message.type == aiohttp.WSMsgType.TEXT:
                await websocket.send_text(message.data)
            elif message.type == aiohttp.WSMsgType.CLOSE:
                closing["upstream"] = (_sendable(message.data), message.extra or "")
                return
            elif message.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                                  aiohttp.WSMsgType.ERROR):  # fmt: skip
                closing["upstream"] = (_sendable(peer.close_code or 1006), "")
                return

    tasks = [asyncio.create_task(to_upstream()), asyncio.create_task(to_client()),
             asyncio.create_task(watching())]  # fmt: skip
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    # who ended it decides what each side is told
    if "gateway" in closing:  # the caller may no longer use it: both sides are closed
        code, reason = closing["gateway"]
        to_peer, to_client = (1000, b""), (code, reason)
    elif "upstream" in closing:
        code, reason = closing["upstream"]
        to_peer, to_client = (code, b""), (code, _short(reason))
    else:
        code, reason = closing.get("client", (INTERNAL_ERROR, ""))
        to_peer, to_client = (code, _short(reason).encode()), (code, "")
    with contextlib.suppress(Exception):
        await peer.close(code=to_peer[0], message=to_peer[1])
    if websocket.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await websocket.close(*to_client)


def _short(reason: str) -> str:
    """A close reason within the protocol's 123 bytes, cut on a character boundary."""
    return reason.encode()[:120].decode("utf-8", errors="ignore")
