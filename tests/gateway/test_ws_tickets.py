"""Sync WebSocket tickets through the real gateway: issued by the gateway to an API key or a
session (with its CSRF token), single use, bound to one integration, expiring, and standing for
the credential that asked for them: revoking the key, ending the session, changing or removing
the member or suspending the tenant closes a socket opened with one (1008, within 5 s)."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import asyncpg
import httpx
import pytest

from common.roles import Role
from tests.people import Person, person
from tests.support import TenantKey, add_key, make_tenant

WITHIN = 5.0  # a recheck, the credential cache and the lookup


@dataclass
class World:
    gateway: str
    dsn: str
    tenant: TenantKey  # its admin key
    integration: uuid.UUID

    def ws_url(self, integration: uuid.UUID | None = None, **query: str) -> str:
        path = f"/api/v1/integrations/{integration or self.integration}/sync/ws"
        url = self.gateway.replace("http", "ws", 1) + path
        return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")

    async def person(self, role: str | None = "editor", **kw) -> Person:
        """A member signed in to the tenant as ``role`` (None: signed in, in no tenant)."""
        return await person(self.gateway, self.dsn, self.tenant if role else None, role, **kw)

    async def ticket(self, headers: dict[str, str], integration: uuid.UUID | None = None) -> str:
        r = await self.post(f"/api/v1/integrations/{integration or self.integration}/sync/ticket",
                            headers=headers)  # fmt: skip
        assert r.status_code == 200, r.text
        return r.json()["ticket"]

    async def request(self, method: str, path: str, **kw) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.gateway, timeout=10) as client:
            return await client.request(method, path, **kw)

    async def post(self, path: str, **kw) -> httpx.Response:
        return await self.request("POST", path, **kw)


async def _integration(dsn: str, tenant_id: uuid.UUID) -> uuid.UUID:
    """An installed integration without a connector behind it: its document still syncs."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(
            "INSERT INTO integration_connectors (tenant_id, connector_name, service_name)"
            " VALUES ($1, 'live', 'live') RETURNING id",
            tenant_id,
        )
    finally:
        await conn.close()


@pytest.fixture
async def world(suite, dsn) -> World:
    tenant = await make_tenant(dsn)
    return World(suite.gateway, dsn, tenant, await _integration(dsn, tenant.tenant_id))


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A sync socket, once the server's first sync message came."""
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        assert (await ws.receive(timeout=10)).type == aiohttp.WSMsgType.BINARY
        yield ws


async def refused(url: str) -> int:
    """The status of a refused handshake (the gateway closed with 1008 before accepting)."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await session.ws_connect(url)
    return caught.value.status


async def close_code(ws: aiohttp.ClientWebSocketResponse, within: float) -> int | None:
    """The code the server closed the socket with, waiting at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        message = await ws.receive(timeout=max(deadline - time.monotonic(), 0.01))
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return ws.close_code


async def still_open(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> bool:
    try:
        message = await ws.receive(timeout=seconds)
    except TimeoutError:
        return True
    return message.type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


# ---------------------------------------------------------------------- issuing and redeeming


@pytest.mark.parametrize("by", ["api_key", "session"])
async def test_a_ticket_opens_the_socket_once(world: World, by: str):
    if by == "api_key":
        headers = (await add_key(world.dsn, world.tenant, Role.editor)).headers
    else:
        headers = (await world.person()).headers
    r = await world.post(f"/api/v1/integrations/{world.integration}/sync/ticket", headers=headers)
    assert r.status_code == 200, r.text
    issued = r.json()
    assert issued["ticket"].startswith("syt_") and issued["writable"] is True
    ticket = issued["ticket"]
    async with opened(world.ws_url(ticket=ticket)) as ws:
        assert await still_open(ws, 0.5)
    assert await refused(world.ws_url(ticket=ticket)) == 403


async def test_a_viewers_ticket_reads_only(world: World):
    viewer = await world.person("viewer")
    r = await world.post(
        f"/api/v1/integrations/{world.integration}/sync/ticket", headers=viewer.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["writable"] is False


async def test_a_ticket_opens_its_own_integration_only(world: World):
    other = await _integration(world.dsn, world.tenant.tenant_id)
    ticket = await world.ticket(world.tenant.headers)
    assert await refused(world.ws_url(other, ticket=ticket)) == 403
    # the failed try consumed it
    assert await refused(world.ws_url(ticket=ticket)) == 403
    # nor another path that is not a sync socket
    ticket = await world.ticket(world.tenant.headers)
    url = world.gateway.replace("http", "ws", 1) + f"/api/v1/integrations/{world.integration}/x"
    assert await refused(f"{url}?ticket={ticket}") == 403


async def test_no_ticket_for_another_tenants_integration(world: World, dsn):
    stranger = await make_tenant(dsn)
    theirs = await _integration(dsn, stranger.tenant_id)
    r = await world.post(f"/api/v1/integrations/{theirs}/sync/ticket", headers=world.tenant.headers)
    assert r.status_code == 404, r.text
    assert r.json()["code"] == "integration_not_found"
    r = await world.post(
        f"/api/v1/integrations/{uuid.uuid4()}/sync/ticket", headers=world.tenant.headers
    )
    assert r.status_code == 404, r.text
    r = await world.post("/api/v1/integrations/nope/sync/ticket", headers=world.tenant.headers)
    assert r.status_code == 422, r.text
    r = await world.post(f"/api/v1/integrations/{world.integration}/sync/ticket")
    assert r.status_code == 401, r.text


async def test_an_expired_or_unknown_ticket_is_refused(world: World):
    ticket = await world.ticket(world.tenant.headers)
    conn = await asyncpg.connect(world.dsn)
    try:
        await conn.execute(
            "UPDATE ws_tickets SET expires_at = now() - interval '1 second' WHERE ticket_hash = $1",
            hashlib.sha256(ticket.encode()).digest(),
        )
    finally:
        await conn.close()
    assert await refused(world.ws_url(ticket=ticket)) == 403
    assert await refused(world.ws_url(ticket="syt_" + "x" * 43)) == 403
    assert await refused(world.ws_url(ticket="")) == 403


async def test_a_session_needs_its_csrf_token_for_a_ticket(world: World):
    person = await world.person()
    path = f"/api/v1/integrations/{world.integration}/sync/ticket"
    r = await world.post(path, headers=person.cookie)
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "csrf_refused"
    without_token = {k: v for k, v in person.headers.items() if k != "x-csrf-token"}
    r = await world.post(path, headers=without_token)
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "csrf_refused"
    r = await world.post(path, headers={**person.headers, "origin": "https://elsewhere.test"})
    assert r.status_code == 403, r.text


# ---------------------------------------------------------------------- checked while open


async def _closes(ws: aiohttp.ClientWebSocketResponse, act: Awaitable[httpx.Response]) -> None:
    """``act`` (a request, awaited here) closes the socket with 1008 within 5 s."""
    r = await act
    assert r.status_code in (200, 204), r.text
    acted = time.monotonic()
    assert await close_code(ws, WITHIN + 1) == 1008
    assert time.monotonic() - acted < WITHIN


async def test_revoking_the_key_closes_its_ticket_socket(world: World):
    key = await add_key(world.dsn, world.tenant, Role.editor)
    other = await add_key(world.dsn, world.tenant, Role.editor)
    async with (
        opened(world.ws_url(ticket=await world.ticket(key.headers))) as ws,
        opened(world.ws_url(ticket=await world.ticket(other.headers))) as untouched,
    ):
        assert await still_open(ws, 0.2)
        await _closes(ws, world.request("DELETE", f"/api/v1/api-keys/{key.key_id}",
                                        headers=world.tenant.headers))  # fmt: skip
        assert await still_open(untouched, 0.5)  # another key's socket is still served


async def test_ending_the_session_closes_its_ticket_socket(world: World):
    person = await world.person()
    async with opened(world.ws_url(ticket=await world.ticket(person.headers))) as ws:
        await _closes(ws, world.post("/auth/logout",
                                     headers={**person.headers, "accept": "application/json"}))  # fmt: skip


async def test_a_role_change_closes_the_ticket_socket(world: World):
    person = await world.person()
    async with opened(world.ws_url(ticket=await world.ticket(person.headers))) as ws:
        await _closes(ws, world.request("PATCH", f"/api/v1/members/{person.user_id}",
                                        json={"role": "viewer"}, headers=world.tenant.headers))  # fmt: skip


async def test_removing_the_member_closes_the_ticket_socket(world: World):
    person = await world.person()
    async with opened(world.ws_url(ticket=await world.ticket(person.headers))) as ws:
        await _closes(ws, world.request("DELETE", f"/api/v1/members/{person.user_id}",
                                        headers=world.tenant.headers))  # fmt: skip


async def test_suspending_the_tenant_closes_ticket_sockets(world: World):
    person = await world.person()
    key = await add_key(world.dsn, world.tenant, Role.editor)
    operator = await world.person(None, operator=True)
    async with (
        opened(world.ws_url(ticket=await world.ticket(person.headers))) as by_session,
        opened(world.ws_url(ticket=await world.ticket(key.headers))) as by_key,
    ):
        r = await world.post(f"/api/v1/admin/tenants/{world.tenant.slug}/suspend",
                             json={"reason": "test"}, headers=operator.headers)  # fmt: skip
        assert r.status_code == 200, r.text
        acted = time.monotonic()
        codes = await asyncio.gather(
            close_code(by_session, WITHIN + 1), close_code(by_key, WITHIN + 1)
        )
        assert codes == [1008, 1008]
        assert time.monotonic() - acted < WITHIN
    # and a suspended tenant gets no new ticket
    r = await world.post(
        f"/api/v1/integrations/{world.integration}/sync/ticket", headers=key.headers
    )
    assert r.status_code == 403 and r.json()["code"] == "tenant_suspended", r.text
