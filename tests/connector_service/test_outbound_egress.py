"""The egress rule on outbound webhooks, in production settings (the session's suite: public
addresses only): a URL leading to loopback, a private network or the metadata address is
refused at creation with a 422 problem before anything connects; and an endpoint whose address
turned non-public after it was saved (DNS rebinding) gets a failed attempt, resolved and
refused at send time by a delivery loop under the same rule, again without a connection."""

from __future__ import annotations

import asyncio
import time

import httpx

from common.crypto import KeyRing
from common.endpoints import EndpointPolicy, parse_networks
from connector_service.outbound import events, service
from tests.conftest import TEST_KEY_RING
from tests.connector_service.outbound_rig import production_deliveries
from tests.support import connected, make_tenant


async def test_non_public_urls_are_refused_before_connecting(suite, dsn, listener):
    port, accepted = listener
    t = await make_tenant(dsn)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers, timeout=30) as c:
        for url in (f"http://127.0.0.1:{port}/hook", f"http://localhost:{port}/hook",
                    "http://10.1.2.3/hook", "http://169.254.169.254/latest", "http://[::1]/x"):  # fmt: skip
            r = await c.post("/api/v1/webhooks",
                             json={"url": url, "event_types": [events.SYNC_FAILED]})  # fmt: skip
            assert r.status_code == 422, (url, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["code"] == "endpoint_not_allowed"
            assert "egress" in r.json()["detail"]
        assert (await c.get("/api/v1/webhooks")).json()["items"] == []
    assert accepted == []


async def test_an_address_refused_at_send_time_is_a_failed_attempt(suite, dsn, database,
                                                                  listener):  # fmt: skip
    port, accepted = listener
    t = await make_tenant(dsn)
    # saved as if its name had led to a public address then, and to loopback now
    anything = EndpointPolicy(parse_networks("0.0.0.0/0,127.0.0.0/8"), name="test")
    async with connected(dsn) as conn, conn.transaction():
        endpoint, _secret = await service.create(
            conn, KeyRing.from_json(TEST_KEY_RING), anything, tenant_id=t.tenant_id,
            actor="test", url=f"http://127.0.0.1:{port}/hook",
            event_types=[events.SYNC_FAILED], description="",
        )  # fmt: skip
    async with (
        production_deliveries(database),
        httpx.AsyncClient(base_url=suite.gateway, headers=t.headers, timeout=30) as c,
    ):
        r = await c.post(f"/api/v1/webhooks/{endpoint['id']}/test")
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 15
        while True:
            items = (await c.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries")).json()["items"]
            if items and items[0]["attempt_log"]:
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    (attempt,) = items[0]["attempt_log"]
    assert attempt == {**attempt, "ok": False, "status": None, "error": "address_refused"}
    assert items[0]["state"] == "pending"  # retried on the schedule, like any failure
    assert accepted == []
