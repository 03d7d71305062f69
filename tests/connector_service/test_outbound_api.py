"""The webhooks API through the gateway (the session's suite): deliveries page by a
(created_at, id) cursor, so those published in one transaction (sharing created_at) are all
listed across a page boundary; replays and test events to a disabled endpoint are refused with
a 409 problem; an endpoint URL's query values (a receiver's token) are masked for viewers and
in audit entries, and whole for admins."""

from __future__ import annotations

import httpx

from common.crypto import KeyRing
from common.endpoints import EndpointPolicy, parse_networks
from common.roles import Role
from connector_service.outbound import events, service
from tests.conftest import TEST_KEY_RING
from tests.people import audit_of
from tests.support import add_key, connected, make_tenant

URL = "http://127.0.0.1:9/hook?token=s3cret&team=a"
MASKED = "http://127.0.0.1:9/hook?token=***&team=***"


async def _endpoint(dsn: str, tenant_id, *, url: str = URL) -> dict:
    """Made in the database: the suite's egress rule (public addresses only) refuses loopback,
    and nothing here is to be delivered (the deliveries are not due for a day)."""
    policy = EndpointPolicy(parse_networks("127.0.0.0/8"), name="test")
    async with connected(dsn) as conn, conn.transaction():
        ep, _ = await service.create(conn, KeyRing.from_json(TEST_KEY_RING), policy,
                                     tenant_id=tenant_id, actor="test", url=url,
                                     event_types=[events.RECORDS_CHANGED],
                                     description="")  # fmt: skip
    return dict(ep)


async def test_deliveries_of_one_commit_are_all_paged(suite, dsn):
    t = await make_tenant(dsn)
    ep = await _endpoint(dsn, t.tenant_id)
    async with connected(dsn) as conn, conn.transaction():  # one sync commit, three streams
        for stream in ("contacts", "companies", "deals"):
            await events.publish(
                conn,
                tenant_id=t.tenant_id,
                type=events.RECORDS_CHANGED,
                data=events.records_changed(stream=stream, origin="pull"),
            )
        await conn.execute("UPDATE outbound_deliveries SET next_at = now() + interval '1 day'"
                           " WHERE endpoint_id = $1", ep["id"])  # fmt: skip
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers, timeout=30) as c:
        path = f"/api/v1/webhooks/{ep['id']}/deliveries"
        seen, before = [], None
        for _ in range(3):
            r = await c.get(path, params={"limit": 2, **({"before": before} if before else {})})
            assert r.status_code == 200, r.text
            seen += [d["id"] for d in r.json()["items"]]
            if not (before := r.json()["next_before"]):
                break
        assert len(seen) == len(set(seen)) == 3
        # a bad cursor is a problem, not a server error
        r = await c.get(path, params={"before": "not-a-cursor"})
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"


async def test_a_disabled_endpoint_takes_no_replay_nor_test(suite, dsn):
    t = await make_tenant(dsn)
    ep = await _endpoint(dsn, t.tenant_id)
    async with connected(dsn) as conn, conn.transaction():
        await events.publish(
            conn,
            tenant_id=t.tenant_id,
            type=events.RECORDS_CHANGED,
            data=events.records_changed(stream="contacts", origin="pull"),
        )
        delivery = await conn.fetchval("UPDATE outbound_deliveries SET state = 'failed'"
                                       " WHERE endpoint_id = $1 RETURNING id", ep["id"])  # fmt: skip
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers, timeout=30) as c:
        base = f"/api/v1/webhooks/{ep['id']}"
        assert (await c.patch(base, json={"enabled": False})).status_code == 200
        for path in (f"{base}/deliveries/{delivery}/replay", f"{base}/test"):
            r = await c.post(path)
            assert r.status_code == 409, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["code"] == "webhook_endpoint_disabled"
        async with connected(dsn) as conn:
            assert await conn.fetchval("SELECT count(*) FROM outbound_deliveries"
                                       " WHERE endpoint_id = $1", ep["id"]) == 1  # fmt: skip


async def test_the_urls_query_is_masked_for_viewers_and_in_the_audit(suite, dsn):
    t = await make_tenant(dsn)
    viewer = await add_key(dsn, t, Role.viewer)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers, timeout=30) as admin:
        # made through the API (the suite refuses loopback, so a public address; not sent)
        r = await admin.post("/api/v1/webhooks", json={
            "url": "https://93.184.216.34/hook?token=s3cret", "event_types": [events.SYNC_FAILED]})  # fmt: skip
        assert r.status_code == 201, r.text
        ep = r.json()
        r = await admin.patch(f"/api/v1/webhooks/{ep['id']}",
                              json={"url": "https://93.184.216.34/hook?token=n3w&x=1"})  # fmt: skip
        assert r.status_code == 200, r.text
        assert (await admin.get(f"/api/v1/webhooks/{ep['id']}")).json()["url"] == (
            "https://93.184.216.34/hook?token=n3w&x=1")  # fmt: skip
    async with httpx.AsyncClient(base_url=suite.gateway, headers=viewer.headers,
                                 timeout=30) as c:  # fmt: skip
        listed = (await c.get("/api/v1/webhooks")).json()["items"]
        one = (await c.get(f"/api/v1/webhooks/{ep['id']}")).json()
    assert (
        [e["url"] for e in listed] == [one["url"]] == ["https://93.184.216.34/hook?token=***&x=***"]
    )
    entries = await audit_of(dsn, t.tenant_id, "webhook.")
    assert [e["action"] for e in entries] == [
        "webhook.endpoint_created",
        "webhook.endpoint_updated",
    ]
    assert not any("s3cret" in e["payload_text"] or "n3w" in e["payload_text"] for e in entries)
    assert entries[0]["payload"]["url"] == "https://93.184.216.34/hook?token=***"
