"""Bounded work per tenant (issue 13, part 5): proxied requests hold one of their tenant's slots
until their answer is fully sent (a stream as long as it streams), WebSockets while they are
open; over SEEDOS_GATEWAY_TENANT_MAX_CONCURRENT (2 here) the next is 429 too_many_concurrent,
another tenant is unaffected, and slots come back after ends, errors, disconnects and callers
giving up. Costs about 3 s to start the rig and 4 s for the tests (2 s of it a 504)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest

from tests.gateway.limits.rig import gateways
from tests.support import TenantKey, make_tenant, metric_total

MAX = 2
HOLD = "/api/v1/marketplace/hold?seconds=30"


@pytest.fixture(scope="module")
def rig(dsn, tmp_path_factory):
    log = tmp_path_factory.mktemp("concurrency") / "rig.log"
    with gateways(dsn, log, limits={}, SEEDOS_GATEWAY_TENANT_MAX_CONCURRENT=str(MAX),
                  SEEDOS_GATEWAY_UPSTREAM_TIMEOUT_SECONDS="2") as running:  # fmt: skip
        yield running


@contextlib.asynccontextmanager
async def holding(client: httpx.AsyncClient, t: TenantKey) -> AsyncIterator[None]:
    """A streamed answer begun (its first chunk read) and left open until the block ends, when
    the client hangs up."""
    async with client.stream("GET", HOLD, headers=t.headers) as r:
        assert r.status_code == 200
        chunks = r.aiter_raw()  # kept: dropping it would close the stream
        assert await anext(chunks) == b"start\n"
        yield


async def refused(client: httpx.AsyncClient, t: TenantKey) -> None:
    r = await client.get("/api/v1/marketplace/anything", headers=t.headers)
    assert r.status_code == 429 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "too_many_concurrent" and r.headers["retry-after"] == "1"


async def idle(client: httpx.AsyncClient, held: int = 0) -> None:
    """Polls until ``held`` slots are held in all (a hang-up reaches the gateway a moment
    after it is made; /metrics itself holds none)."""
    deadline = time.monotonic() + 5
    while metric_total((await client.get("/metrics")).text, "seedos_tenant_slots_held") != held:
        assert time.monotonic() < deadline, "slots still held"
        await asyncio.sleep(0.05)


async def full_capacity(client: httpx.AsyncClient, t: TenantKey) -> None:
    """All MAX slots free (none leaked): MAX streams held at once, and one more refused."""
    await idle(client)
    async with holding(client, t), holding(client, t):
        await refused(client, t)


async def test_streams_hold_slots_until_they_end(rig, dsn):
    t, other = await make_tenant(dsn), await make_tenant(dsn)
    async with httpx.AsyncClient(base_url=rig.gateway, timeout=10) as client:
        before = metric_total((await client.get("/metrics")).text,
                              "seedos_rate_limited_total", scope="concurrency")  # fmt: skip
        async with holding(client, t):
            async with holding(client, t):
                await refused(client, t)
                r = await client.get("/api/v1/marketplace/anything", headers=other.headers)
                assert r.status_code == 200  # per tenant
                url = rig.gateway.replace("http", "ws") + "/api/v1/integrations/ws"
                async with aiohttp.ClientSession() as session:
                    with pytest.raises(aiohttp.WSServerHandshakeError) as handshake:
                        await session.ws_connect(url, headers=t.headers)
                    assert handshake.value.status == 429
                    # refused before the rate limit: no tokens spent, so no fields
                    assert "ratelimit" not in handshake.value.headers
            await idle(client, held=1)  # the client hung up on one: its slot is back
            async with holding(client, t):  # and only that one: the first still holds its own
                await refused(client, t)
        await idle(client)
        # a stream that ends by itself gives its slot back with its last byte
        async with holding(client, t):
            r = await client.get("/api/v1/marketplace/hold?seconds=0.1", headers=t.headers)
            assert r.text == "start\nend\n"
            await idle(client, held=1)
        await full_capacity(client, t)
        after = metric_total((await client.get("/metrics")).text,
                             "seedos_rate_limited_total", scope="concurrency")  # fmt: skip
        assert after == before + 4


async def test_slots_come_back_after_errors_and_callers_giving_up(rig, dsn):
    t = await make_tenant(dsn)
    async with httpx.AsyncClient(base_url=rig.gateway, timeout=10) as client:
        for _ in range(MAX + 1):  # the upstream breaks off mid-stream
            with pytest.raises(httpx.HTTPError):
                await client.get("/api/v1/marketplace/broken", headers=t.headers)
            await idle(client)
        r = await client.get("/api/v1/marketplace/late?seconds=3", headers=t.headers)
        assert r.status_code == 504  # the upstream answers too late (2 s here)
        await idle(client)
        # callers giving up before the upstream answers: their slots stay held until it does
        # (or the upstream timeout passes), since nothing reads from them meanwhile
        for _ in range(MAX):
            with pytest.raises(httpx.TimeoutException):
                await client.get(
                    "/api/v1/marketplace/late?seconds=0.5", headers=t.headers, timeout=0.1
                )
        await refused(client, t)
        await full_capacity(client, t)


async def test_websockets_hold_slots_while_open(rig, dsn):
    t = await make_tenant(dsn)
    url = rig.gateway.replace("http", "ws") + "/api/v1/integrations/ws"
    async with (
        httpx.AsyncClient(base_url=rig.gateway, timeout=10) as client,
        aiohttp.ClientSession() as session,
    ):
        first = await session.ws_connect(url, headers=t.headers)
        async with session.ws_connect(url, headers=t.headers) as second:
            await second.send_str("hello")
            assert await second.receive_str(timeout=5) == "hello"
            await refused(client, t)
        await idle(client, held=1)
        await first.close()
        await full_capacity(client, t)
