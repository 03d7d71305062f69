"""The events existing code publishes, each in the transaction of its change: a sync run's end
(sync.finished, with its counts), the records it pulled (records.changed per stream, with keys
on an incremental run), a platform-side edit (records.changed, origin platform), an install's
status (integration.status_changed). A delivery loop under production's egress rule (the
suites deliver nothing) makes the deliveries to loopback failed attempts, refused before
connecting."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import httpx

from common.crypto import KeyRing
from common.endpoints import EndpointPolicy, parse_networks
from common.roles import Role
from connector_service.outbound import events, service
from tests.conftest import TEST_KEY_RING
from tests.connector_service.outbound_rig import production_deliveries
from tests.connector_service.rig import fetch, install_crm, wait_status
from tests.support import connected, make_tenant


async def _sync(client: httpx.AsyncClient, base: str) -> str:
    """Run a sync and wait for it; the kind of run that ran: ``manual``, or ``scheduled`` when
    the install's first scheduled run was under way (409) and is the one waited for."""
    asked = datetime.now(UTC)
    status = (await client.post(base + "/sync/run")).status_code
    assert status in (202, 409)
    deadline = time.monotonic() + 60
    while True:
        last = (await client.get(base + "/sync/status")).json()["last_run"]
        if (last and last["outcome"] != "running" and last["finished_at"]
                and datetime.fromisoformat(last["finished_at"]) >= asked):  # fmt: skip
            return "manual" if status == 202 else "scheduled"
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)


async def _events(dsn, tenant_id, type_):
    rows = await fetch(dsn, "SELECT e.data, (SELECT count(*) FROM outbound_deliveries d"
                       " WHERE d.event_id = e.id) AS deliveries FROM outbound_events e"
                       " WHERE e.tenant_id = $1 AND e.type = $2 ORDER BY e.created_at",
                       tenant_id, type_)  # fmt: skip
    assert all(r["deliveries"] == 1 for r in rows)
    return [r["data"] for r in rows]


async def test_sync_records_and_status_publish_events(rig, dsn, database, crm_slug):
    t = await make_tenant(dsn, role=Role.admin)
    client = httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers, timeout=30)
    anything = EndpointPolicy(parse_networks("0.0.0.0/0,127.0.0.0/8"), name="test")
    async with connected(dsn) as conn, conn.transaction():
        endpoint, _ = await service.create(
            conn, KeyRing.from_json(TEST_KEY_RING), anything, tenant_id=t.tenant_id,
            actor="test", url="http://127.0.0.1:9/hook", event_types=list(events.EVENT_TYPES),
            description="",
        )  # fmt: skip
    crm = httpx.AsyncClient(base_url=rig.crm.url, headers={"X-API-Key": rig.crm_key}, timeout=30)
    async with client, crm:
        assert (await crm.post("/admin/seed", json={"contacts": 5, "companies": 2})).is_success
        iid = await install_crm(client, rig, crm_slug)
        await wait_status(client, iid, "active")
        base = f"/api/v1/integrations/{iid}"
        await client.patch(base, json={"sync_interval_seconds": 0})
        kind = await _sync(client, base)
        finished = await _events(dsn, t.tenant_id, events.SYNC_FINISHED)
        assert {f["integration_id"] for f in finished} == {iid} and len(finished) in (1, 2)
        assert finished[-1]["kind"] == kind
        changed = await _events(dsn, t.tenant_id, events.RECORDS_CHANGED)
        streams = {c["stream"] for c in changed}
        assert {"contacts", "companies"} <= streams and {c["origin"] for c in changed} == {"pull"}
        # one event per stream of a run, counting what the run pulled
        assert sum(c["upserted"] for c in changed) == sum(f["pulled"] for f in finished) > 0
        # an incremental run names the keys it pulled
        assert (await crm.post("/admin/seed", json={"contacts": 2, "companies": 0})).is_success
        await _sync(client, base)
        latest = (await _events(dsn, t.tenant_id, events.RECORDS_CHANGED))[-1]
        assert latest["stream"] == "contacts" and latest["upserted"] >= 2
        assert len(latest["upserted_keys"]) == latest["upserted"] and not latest["truncated"]

        contacts = (await client.get(base + "/records", params={"stream": "contacts"})).json()
        key = contacts["items"][0]["id"]
        r = await client.patch(f"{base}/records/contacts/{key}", json={"phone": "+1 555 0100"})
        assert r.status_code == 200, r.text
        platform = [c for c in await _events(dsn, t.tenant_id, events.RECORDS_CHANGED)
                    if c["origin"] == "platform"]  # fmt: skip
        assert platform == [{**platform[0], "stream": "contacts", "upserted": 1,
                             "upserted_keys": [key], "deleted": 0, "integration_id": iid}]  # fmt: skip

        assert (await client.post(base + "/disable")).status_code == 200
        statuses = await _events(dsn, t.tenant_id, events.INTEGRATION_STATUS_CHANGED)
        # its first check made it active; a user disabled it
        assert [s["status"] for s in statuses] == ["active", "disabled"]
        assert statuses[0]["previous"] == "pending" and statuses[-1]["integration_id"] == iid

    # production's egress rule refuses loopback: failed attempts, nothing connected
    async with production_deliveries(database):
        deadline = time.monotonic() + 15
        while not (rows := await fetch(dsn, "SELECT a.error FROM outbound_attempts a JOIN"
                                       " outbound_deliveries d ON d.id = a.delivery_id"
                                       " WHERE d.endpoint_id = $1", endpoint["id"])):  # fmt: skip
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
    assert {r["error"] for r in rows} == {"address_refused"}
