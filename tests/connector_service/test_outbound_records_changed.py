"""records.changed from the two merges that run outside a sync run, each in the transaction of
its merge: a provider webhook's batch (connector_service/webhooks/merges.py, origin webhook, one
event per merged batch naming at most 100 keys, nothing when the merge fails), and the pull the
push loop makes before writing platform-side edits (catch_up_and_push, origin pull, no run)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from common.crypto import KeyRing
from common.endpoints import EndpointPolicy, parse_networks
from common.roles import Role
from connector_service.outbound import events, service
from connector_service.sync.store import DocStore
from connector_service.webhooks.merges import Merges
from tests.conftest import TEST_KEY_RING
from tests.connector_service.rig import bare_integration, fetch, install_crm, wait_status
from tests.support import connected, make_tenant


async def _subscribe(dsn: str, tenant_id: uuid.UUID) -> Any:
    anything = EndpointPolicy(parse_networks("0.0.0.0/0,127.0.0.0/8"), name="test")
    async with connected(dsn) as conn, conn.transaction():
        endpoint, _ = await service.create(
            conn, KeyRing.from_json(TEST_KEY_RING), anything, tenant_id=tenant_id,
            actor="test", url="http://127.0.0.1:9/hook", event_types=[events.RECORDS_CHANGED],
            description="",
        )  # fmt: skip
    return endpoint


async def _changed(dsn: str, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await fetch(dsn, "SELECT e.data, (SELECT count(*) FROM outbound_deliveries d"
                       " WHERE d.event_id = e.id) AS deliveries FROM outbound_events e"
                       " WHERE e.tenant_id = $1 AND e.type = $2 ORDER BY e.created_at",
                       tenant_id, events.RECORDS_CHANGED)  # fmt: skip
    assert all(r["deliveries"] == 1 for r in rows)
    return [r["data"] for r in rows]


async def test_a_webhook_merge_publishes_one_event_per_batch(database, dsn):
    iid = await bare_integration(database, dsn)
    tenant_id = (await fetch(dsn, "SELECT tenant_id FROM integration_connectors WHERE id = $1",
                             iid))[0]["tenant_id"]  # fmt: skip
    await _subscribe(dsn, tenant_id)
    merges = Merges(DocStore(database))

    def send(n: int, record: dict | None = None):
        key = f"cus_{n}"
        return merges.apply(iid, "customers", "id", key=key, record=record or {"id": key},
                            delivery=f"evt_{n}", event_type="customer.created")  # fmt: skip

    await send(0)  # alone: merged at once
    (first,) = await _changed(dsn, tenant_id)
    assert first == {**first, "stream": "customers", "origin": "webhook", "upserted": 1,
                     "upserted_keys": ["cus_0"], "deleted": 0, "deleted_keys": [],
                     "truncated": False, "integration_id": str(iid)}  # fmt: skip
    assert "run_id" not in first

    # 150 deliveries at once: a merge or two (at most 200 records each), an event each, every
    # record counted, at most 100 keys named
    await asyncio.gather(*(send(n) for n in range(1, 151)))
    batches = merges.merges - 1
    later = (await _changed(dsn, tenant_id))[1:]
    assert len(later) == batches and 1 <= batches <= 3, (batches, later)
    assert sum(c["upserted"] for c in later) == 150
    assert all(len(c["upserted_keys"]) == min(c["upserted"], 100) for c in later)
    assert all(c["truncated"] == (c["upserted"] > 100) for c in later)
    named = {k for c in later for k in c["upserted_keys"]}
    assert named <= {f"cus_{n}" for n in range(1, 151)}

    # a deletion is named as one
    await merges.apply(iid, "customers", "id", key="cus_3", record=None, delivery="evt_del",
                       event_type="customer.deleted")  # fmt: skip
    gone = (await _changed(dsn, tenant_id))[-1]
    assert gone == {**gone, "upserted": 0, "deleted": 1, "deleted_keys": ["cus_3"]}

    # a merge that fails (a delivery id the table refuses) publishes nothing: same transaction
    before = len(await _changed(dsn, tenant_id))
    failed = await asyncio.gather(
        merges.apply(iid, "customers", "id", key="cus_x", record={"id": "cus_x"},
                     delivery="x" * 201, event_type="customer.created"),
        return_exceptions=True,
    )  # fmt: skip
    assert isinstance(failed[0], Exception)
    assert len(await _changed(dsn, tenant_id)) == before


async def test_a_catch_up_pull_publishes_what_it_merged(rig, dsn, crm_slug):
    t = await make_tenant(dsn, role=Role.admin)
    await _subscribe(dsn, t.tenant_id)
    client = httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers, timeout=30)
    crm = httpx.AsyncClient(base_url=rig.crm.url, headers={"X-API-Key": rig.crm_key}, timeout=30)
    async with client, crm:
        assert (await crm.post("/admin/seed", json={"contacts": 5, "companies": 0})).is_success
        iid = await install_crm(client, rig, crm_slug)
        await wait_status(client, iid, "active")
        base = f"/api/v1/integrations/{iid}"
        await client.patch(base, json={"sync_interval_seconds": 0})  # no scheduled runs
        assert (await client.post(base + "/sync/run")).status_code == 202
        deadline = time.monotonic() + 60
        while True:  # the first run done (its events published)
            last = (await client.get(base + "/sync/status")).json()["last_run"]
            if last and last["outcome"] != "running" and last["finished_at"]:
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        assert last["outcome"] == "succeeded", last
        runs = len(await _changed(dsn, t.tenant_id))

        # new contacts in the CRM, then an edit on the platform: the push loop pulls contacts
        # from the cursor (merging the new ones) before writing the edit
        assert (await crm.post("/admin/seed", json={"contacts": 3, "companies": 0})).is_success
        contacts = (await client.get(base + "/records", params={"stream": "contacts"})).json()
        key = contacts["items"][0]["id"]
        r = await client.patch(f"{base}/records/contacts/{key}", json={"phone": "+1 555 0101"})
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 30
        while not (pulled := [c for c in (await _changed(dsn, t.tenant_id))[runs:]
                              if c["origin"] == "pull"]):  # fmt: skip
            assert time.monotonic() < deadline, await _changed(dsn, t.tenant_id)
            await asyncio.sleep(0.2)
        # no run since the first: this came from the push loop's pull
        assert len(await fetch(dsn, "SELECT 1 FROM sync_runs WHERE integration_id = $1",
                               uuid.UUID(iid))) == 1  # fmt: skip
    (catch_up,) = pulled
    assert catch_up == {**catch_up, "stream": "contacts", "integration_id": iid,
                        "truncated": False}  # fmt: skip
    assert "run_id" not in catch_up
    assert catch_up["upserted"] >= 3 and len(catch_up["upserted_keys"]) == catch_up["upserted"]
    # the keys it names are records the platform now holds
    async with httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers,
                                 timeout=30) as client:  # fmt: skip
        for k in catch_up["upserted_keys"]:
            r = await client.get(f"{base}/records/contacts/{k}")
            assert r.status_code == 200, (k, r.text)


async def test_a_runs_merged_pages_publish_as_they_commit(rig, dsn, crm_slug):
    """An incremental run's records.changed is committed with each merged page (before the
    run's end, which a crash could stop from coming), naming the run; sync.finished, at the
    end, carries the run's counts."""
    t = await make_tenant(dsn, role=Role.admin)
    await _subscribe(dsn, t.tenant_id)
    client = httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers, timeout=30)
    crm = httpx.AsyncClient(base_url=rig.crm.url, headers={"X-API-Key": rig.crm_key}, timeout=30)
    async with client, crm:
        assert (await crm.post("/admin/seed", json={"contacts": 3, "companies": 1})).is_success
        iid = await install_crm(client, rig, crm_slug)
        await wait_status(client, iid, "active")
        base = f"/api/v1/integrations/{iid}"
        await client.patch(base, json={"sync_interval_seconds": 0})
        for _ in range(2):  # a first load, then an incremental run merging pages
            asked = datetime.now(UTC)
            # 409: the install's own first run is on; a run ending after asked is waited for
            assert (await client.post(base + "/sync/run")).status_code in (202, 409)
            deadline = time.monotonic() + 60
            while True:
                last = (await client.get(base + "/sync/status")).json()["last_run"]
                if (last and last["outcome"] != "running" and last["finished_at"]
                        and datetime.fromisoformat(last["finished_at"]) >= asked):  # fmt: skip
                    break
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            assert last["outcome"] == "succeeded", last
            assert (await crm.post("/admin/seed", json={"contacts": 2, "companies": 0})).is_success
    run = (await fetch(dsn, "SELECT id, finished_at FROM sync_runs WHERE integration_id = $1"
                       " ORDER BY started_at DESC LIMIT 1", uuid.UUID(iid)))[0]  # fmt: skip
    changed = await fetch(dsn, "SELECT data, created_at FROM outbound_events WHERE tenant_id = $1"
                          " AND type = $2 AND data->>'run_id' = $3",
                          t.tenant_id, events.RECORDS_CHANGED, str(run["id"]))  # fmt: skip
    assert changed and {c["data"]["stream"] for c in changed} == {"contacts"}
    assert sum(c["data"]["upserted"] for c in changed) >= 2
    # committed before the transaction that ended the run
    assert all(c["created_at"] < run["finished_at"] for c in changed)
