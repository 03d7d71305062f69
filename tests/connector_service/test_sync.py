"""Sync end to end with the demo CRM: pull into the document, edits on either side converging,
the outbox under failures, and the Yjs HTTP exchange (bad input refused, nothing changed).

Real processes: the suite, the demo CRM and the example connector (rig.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from pycrdt import Doc, Map, write_message

from common.roles import Role
from seedos_cli.supervisor import SERVICES
from seedos_sdk.testing.process import start
from tests.conftest import ROOT
from tests.connector_service.rig import SDK_DIR, fetch, install_crm, register, wait_status
from tests.support import make_tenant

INTEROP = ROOT / "tests" / "sync_interop"


class World:
    def __init__(self, client: httpx.AsyncClient, crm: httpx.AsyncClient, iid: str) -> None:
        self.client, self.crm, self.iid = client, crm, iid
        self.base = f"/api/v1/integrations/{iid}"

    async def sync(self) -> dict:
        """A run, started now or already running, to its end; returns the status."""
        asked = datetime.now(UTC)
        r = await self.client.post(self.base + "/sync/run")
        assert r.status_code in (202, 409), r.text
        deadline = time.monotonic() + 60
        while True:
            status = (await self.client.get(self.base + "/sync/status")).json()
            last = status["last_run"]
            if (last and last["outcome"] != "running" and last["finished_at"]
                    and datetime.fromisoformat(last["finished_at"]) >= asked):  # fmt: skip
                return status
            assert time.monotonic() < deadline, status
            await asyncio.sleep(0.2)

    async def drained(self, within: float = 30) -> dict:
        """Wait until the outbox has nothing pending."""
        deadline = time.monotonic() + within
        while True:
            status = (await self.client.get(self.base + "/sync/status")).json()
            if status["outbox_depth"] == 0:
                return status
            assert time.monotonic() < deadline, status
            await asyncio.sleep(0.2)

    async def contacts(self) -> dict[str, dict]:
        return await self.records("contacts")

    async def records(self, stream: str) -> dict[str, dict]:
        """Every record of ``stream`` the platform holds, by primary key (``id``)."""
        out, cursor = {}, None
        while True:
            params = {"stream": stream, "limit": 200, **({"cursor": cursor} if cursor else {})}
            page = (await self.client.get(self.base + "/records", params=params)).json()
            out |= {r["id"]: r for r in page["items"]}
            cursor = page["next_cursor"]
            if cursor is None:
                return out

    async def crm_contacts(self) -> dict[str, dict]:
        found = (await self.crm.get("/v1/contacts", params={"limit": 1000})).json()["results"]
        return {c["id"]: c for c in found}


@contextlib.asynccontextmanager
async def world_of(rig, dsn: str, endpoint: str) -> AsyncIterator[World]:
    """A new tenant's install of the connector at ``endpoint`` (put in the catalog under a
    fresh slug) on the rig's demo CRM, reset and seeded with 30 contacts and 5 companies; its
    scheduled runs off, active."""
    slug = await register(dsn, endpoint)
    t = await make_tenant(dsn, role=Role.editor)
    crm = httpx.AsyncClient(base_url=rig.crm.url, headers={"X-API-Key": rig.crm_key}, timeout=30)
    await crm.post("/admin/reset")
    seeded = await crm.post("/admin/seed", json={"contacts": 30, "companies": 5})
    assert seeded.status_code < 300, seeded.text
    client = httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers, timeout=30)
    iid = await install_crm(client, rig, slug, page_size=7)
    # runs only when a test asks (a scheduled one may still have started before this)
    r = await client.patch(f"/api/v1/integrations/{iid}", json={"sync_interval_seconds": 0})
    assert r.status_code == 200, r.text
    assert (await wait_status(client, iid, "active"))["status"] == "active"
    installed = (await client.get(f"/api/v1/integrations/{iid}")).json()
    assert installed["service_name"] == slug
    try:
        yield World(client, crm, iid)
    finally:
        await crm.delete("/admin/faults")
        await client.aclose()
        await crm.aclose()


@pytest.fixture
async def world(rig, dsn):
    async with world_of(rig, dsn, rig.crm_connector.url) as world:
        yield world


async def test_initial_and_incremental_pull(world, dsn):
    status = await world.sync()
    assert status["last_run"]["outcome"] == "succeeded", status
    crm = await world.crm_contacts()
    mine = await world.contacts()
    assert set(mine) == set(crm) and len(mine) == 30
    some = next(iter(crm))
    assert mine[some]["email"] == crm[some]["email"]
    assert set(status["cursors"]) == {"contacts", "companies"}
    # an edit and a deletion in the CRM arrive with the next run
    await world.crm.put(f"/v1/contacts/{some}", json={**_writable(crm[some]), "phone": "+1 555"})
    gone = list(crm)[1]
    assert (await world.crm.delete(f"/v1/contacts/{gone}")).status_code < 300
    status = await world.sync()
    assert status["last_run"]["records_pulled"] >= 1 and status["last_run"]["records_deleted"] == 1
    mine = await world.contacts()
    assert mine[some]["phone"] == "+1 555" and gone not in mine
    # nothing the CRM sent was echoed back to it
    assert status["outbox_depth"] == 0
    runs = (await world.client.get(world.base + "/sync/runs")).json()["items"]
    assert runs[0]["outcome"] == "succeeded" and runs[0]["finished_at"]


def _writable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("id", "created_at", "updated_at")}


async def test_edits_on_both_sides_converge(world):
    await world.sync()
    crm = await world.crm_contacts()
    a, b = list(crm)[:2]
    # different fields of one record: both survive
    r = await world.client.patch(f"{world.base}/records/contacts/{a}", json={"first_name": "Ada"})
    assert r.status_code == 200 and r.json()["first_name"] == "Ada", r.text
    await world.crm.put(f"/v1/contacts/{a}", json={**_writable(crm[a]), "last_name": "Lovelace"})
    # the same field on both sides: ends equal everywhere
    await world.client.patch(f"{world.base}/records/contacts/{b}", json={"phone": "platform"})
    await world.crm.put(f"/v1/contacts/{b}", json={**_writable(crm[b]), "phone": "crm"})
    await world.drained()
    await world.sync()
    await world.drained()
    await world.sync()
    mine, theirs = await world.contacts(), await world.crm_contacts()
    assert mine[a]["first_name"] == theirs[a]["first_name"] == "Ada"
    assert mine[a]["last_name"] == theirs[a]["last_name"] == "Lovelace"
    assert mine[b]["phone"] == theirs[b]["phone"]
    # a deletion on the platform reaches the CRM
    assert (await world.client.delete(f"{world.base}/records/contacts/{a}")).status_code == 204
    await world.drained()
    assert a not in await world.crm_contacts()


async def test_a_refused_change_is_dead_lettered_and_the_rest_go_on(world):
    await world.sync()
    crm = await world.crm_contacts()
    bad, good = list(crm)[:2]
    r = await world.crm.post("/admin/faults", json={
        "paths": [f"/v1/contacts/{bad}"], "methods": ["PUT"], "status": 400, "count": 1})  # fmt: skip
    assert r.status_code == 201, r.text
    await world.client.patch(f"{world.base}/records/contacts/{bad}", json={"first_name": "Bad"})
    await world.client.patch(f"{world.base}/records/contacts/{good}", json={"first_name": "Good"})
    status = await world.drained()
    assert status["dead_letters"] == 1
    letters = (await world.client.get(world.base + "/sync/dead-letters")).json()["items"]
    assert [x["record_key"] for x in letters] == [bad] and letters[0]["last_error"]
    assert (await world.crm_contacts())[good]["first_name"] == "Good"
    # retried (the fault is spent): it goes through
    r = await world.client.post(f"{world.base}/sync/dead-letters/{letters[0]['id']}/retry")
    assert r.status_code == 200
    await world.drained()
    assert (await world.crm_contacts())[bad]["first_name"] == "Bad"
    r = await world.client.delete(f"{world.base}/sync/dead-letters/{letters[0]['id']}")
    assert r.status_code == 404  # no longer dead


async def test_dead_letters_page_through_their_cursor(world):
    """next_cursor of the dead-letter listing leads to the next page (it used to be refused)."""
    await world.sync()
    refused = sorted(list(await world.crm_contacts())[:3])
    r = await world.crm.post("/admin/faults", json={
        "paths": [f"/v1/contacts/{k}" for k in refused], "methods": ["PUT"], "status": 400,
        "count": 3})  # fmt: skip
    assert r.status_code == 201, r.text
    for key in refused:
        r = await world.client.patch(f"{world.base}/records/contacts/{key}", json={"phone": "x"})
        assert r.status_code == 200, r.text
    assert (await world.drained())["dead_letters"] == 3
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        r = await world.client.get(world.base + "/sync/dead-letters", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [x["record_key"] for x in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == refused and pages == 3


async def test_the_crm_down_for_a_while_loses_nothing(world, rig, dsn):
    await world.sync()
    crm = await world.crm_contacts()
    target = list(crm)[3]
    # the CRM process stopped: the change waits, retried at growing intervals
    port = int(rig.crm.url.rsplit(":", 1)[1])
    rig.crm.stop()
    try:
        await world.client.patch(f"{world.base}/records/contacts/{target}", json={"phone": "later"})
        deadline = time.monotonic() + 120  # each try waits for the connector's own retries
        seen: list[tuple[int, float]] = []
        while time.monotonic() < deadline and len(seen) < 2:
            rows = await fetch(dsn, "SELECT attempts, extract(epoch FROM next_attempt_at"
                               " - updated_at) AS wait FROM sync_outbox WHERE record_key = $1",
                               target)  # fmt: skip
            if rows and rows[0]["attempts"] and (not seen or rows[0]["attempts"] > seen[-1][0]):
                seen.append((rows[0]["attempts"], float(rows[0]["wait"])))
            await asyncio.sleep(0.1)
        assert len(seen) >= 2, seen
        # full jitter: each wait is random below a cap that doubles (1 s, 2 s, 4 s, ...)
        assert all(0 <= wait <= 2**attempt + 0.5 for attempt, wait in seen), seen
        status = (await world.client.get(world.base + "/sync/status")).json()
        assert status["dead_letters"] == 0 and status["outbox_depth"] == 1
    finally:  # back on the same port with the same data (later tests need it too)
        rig.crm = start(
            "examples.demo_crm.app:create_app", factory=True, cwd=SDK_DIR, port=port,
            log_path=rig.logs / "crm.log",
            env={"DEMO_CRM_DATA_DIR": str(rig.logs / "crm"), "DEMO_CRM_API_KEYS": rig.crm_key},
        )  # fmt: skip
    await world.drained(within=120)
    assert (await world.crm_contacts())[target]["phone"] == "later"


async def test_yjs_exchange_over_http_and_bad_input(world):
    await world.sync()
    mine = await world.contacts()
    some = next(iter(mine))
    sv = (await world.client.get(world.base + "/sync/state-vector")).content
    # a pycrdt client: first sync (empty state vector) gets the whole document
    doc = Doc()
    records = doc.get("records", type=Map)
    first = await world.client.post(world.base + "/sync", content=write_message(Doc().get_state())
                                    + write_message(b""),
                                    headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert first.status_code == 200, first.text
    doc.apply_update(first.content)
    assert records[f"contacts/{some}"]["email"] == mine[some]["email"]
    # an edit made in the client reaches the platform's JSON view and the CRM
    before = doc.get_state()
    with doc.transaction():
        records[f"contacts/{some}"]["first_name"] = "FromYjs"
    update = doc.get_update(before)
    answer = await world.client.post(world.base + "/sync",
                                     content=write_message(doc.get_state()) + write_message(update))  # fmt: skip
    assert answer.status_code == 200
    assert (await world.contacts())[some]["first_name"] == "FromYjs"
    await world.drained()
    assert (await world.crm_contacts())[some]["first_name"] == "FromYjs"

    # bad input: refused, and the document is unchanged
    after = (await world.client.get(world.base + "/sync/state-vector")).content
    assert after != sv
    for body, code in [
        (b"\xff\xff\xff", "malformed_update"),
        (write_message(b"\x01\x02") + write_message(b"\x07junk"), "malformed_update"),
        (write_message(doc.get_state()) + write_message(b"not-an-update"), "malformed_update"),
    ]:
        r = await world.client.post(world.base + "/sync", content=body)
        assert r.status_code == 400 and r.json()["code"] == code, r.text
    stray = Doc()
    stray_records = stray.get("records", type=Map)
    with stray.transaction():
        stray_records["nostream/1"] = Map({"a": "b"})
        stray_records[f"contacts/{secrets.token_hex(3)}"] = "not a map"
    r = await world.client.post(world.base + "/sync", content=write_message(doc.get_state())
                                + write_message(stray.get_update()))  # fmt: skip
    assert r.status_code == 422 and r.json()["code"] == "invalid_records"
    assert len(r.json()["errors"]) == 2
    assert (await world.client.get(world.base + "/sync/state-vector")).content == after

    # the JSON API: unknown stream, bad bodies, schema violations
    r = await world.client.get(world.base + "/records", params={"stream": "nope"})
    assert r.status_code == 422 and r.json()["code"] == "unknown_stream"
    r = await world.client.patch(f"{world.base}/records/contacts/{some}", json=["x"])
    assert r.status_code == 422 and r.json()["code"] == "invalid_record"
    r = await world.client.patch(f"{world.base}/records/contacts/{some}", json={"email": 5})
    assert r.status_code == 422 and r.json()["code"] == "invalid_record"
    r = await world.client.delete(f"{world.base}/records/contacts/missing-{secrets.token_hex(2)}")
    assert r.status_code == 404
    assert (await world.client.get(world.base + "/sync/state-vector")).content == after


async def test_kill_9_in_the_middle_of_a_run_loses_nothing(world, rig, dsn):
    """connector_service killed with SIGKILL while a run is pulling: after a restart every
    acknowledged change is there and the next run goes on from where the durable progress
    says. The run is a resync of a stream grown past a shard's bound, so it is a first load
    (staged page by page with its cursor, built into shards at the end); an edit made on the
    platform meanwhile is merged into the new shards."""
    await world.sync()  # the 30 seeded contacts, in the install's root shard
    first = next(iter(await world.contacts()))
    total = 1500
    await world.crm.post("/admin/seed", json={"contacts": total - 30})
    r = await world.client.patch(world.base, json={
        "config": {"base_url": rig.crm.url, "page_size": 50}, "sync_interval_seconds": 0})  # fmt: skip
    assert r.status_code == 200

    # every page read takes a while: the run is still going when the process dies
    await world.crm.post("/admin/faults", json={
        "paths": ["/v1/contacts"], "methods": ["GET"], "latency_ms": 150, "count": 1000})  # fmt: skip
    deadline = time.monotonic() + 30
    while (r := await world.client.post(world.base + "/sync/resync")).status_code == 409:
        assert time.monotonic() < deadline  # a run that began before scheduling was off
        await asyncio.sleep(0.1)
    assert r.status_code == 202, r.text
    while True:  # pages staged, durable with their cursor: the load is under way
        loading = (await world.client.get(world.base + "/sync/status")).json()["loading"]
        if loading.get("contacts", {}).get("records", 0) > 0:
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    # an acknowledged platform edit just before the crash
    edited = await world.client.patch(f"{world.base}/records/contacts/{first}",
                                      json={"first_name": "Survivor"})  # fmt: skip
    assert edited.status_code == 200
    staged = (await world.client.get(world.base + "/sync/status")).json()["loading"]["contacts"]
    service = rig.suite.supervisor.procs["connector_service"]
    service.send_signal(signal.SIGKILL)
    service.wait()
    await world.crm.delete("/admin/faults")
    await world.crm.delete("/admin/stats")

    # what Postgres holds (snapshot + log) has every acknowledged change
    durable = await _stored_document(dsn, world.iid)
    contacts = [k for k in durable if k.startswith("contacts/")]
    assert 0 < len(contacts) < total
    assert durable[f"contacts/{first}"]["first_name"] == "Survivor"

    rig.suite.supervisor.start(SERVICES[0], rig.suite.ports["connector_service"])
    rig.suite.supervisor.wait_ready({"connector_service": rig.suite.connector_service})
    assert (await world.contacts())[first]["first_name"] == "Survivor"
    await world.sync()
    runs = (await world.client.get(world.base + "/sync/runs")).json()["items"]
    assert runs[0]["outcome"] == "succeeded", runs[:2]
    assert "interrupted" in [run["outcome"] for run in runs[1:]], runs
    after = await world.contacts()
    assert len(after) == total and after[first]["first_name"] == "Survivor"
    # the pulls after the restart went on from the durable progress, not from the start
    stats = (await world.crm.get("/admin/stats")).json()["requests"]
    reads = sum(n for path, n in stats.items() if path.startswith("/v1/contacts") and "/" not in
                path.removeprefix("/v1/contacts"))  # fmt: skip
    assert reads <= (total - staged["records"]) // 50 + 4, (reads, staged)
    await world.drained()
    assert (await world.crm.get(f"/v1/contacts/{first}")).json()["first_name"] == "Survivor"


async def _stored_document(dsn: str, iid: str) -> dict:
    """The document as Postgres holds it: the snapshot, then the log."""
    doc = Doc()
    records = doc.get("records", type=Map)
    snapshot = await fetch(dsn, "SELECT snapshot FROM sync_shards WHERE id = $1", uuid.UUID(iid))
    if snapshot[0]["snapshot"]:
        doc.apply_update(snapshot[0]["snapshot"])
    for row in await fetch(dsn, 'SELECT "update" FROM sync_updates WHERE shard_id = $1'
                           " ORDER BY id", uuid.UUID(iid)):  # fmt: skip
        doc.apply_update(row["update"])
    return records.to_py()


async def test_a_yjs_document_syncs_over_the_http_diff_endpoint(world, rig):
    """The JavaScript `yjs` package (tests/sync_interop/http_diff.mjs) against POST sync through
    the gateway: it gets the document, and its edit reaches the JSON view and the CRM."""
    node = shutil.which("node")
    if node is None or not (INTEROP / "node_modules" / "yjs").is_dir():
        pytest.fail("Node and tests/sync_interop/node_modules are needed: run `make test`")
    await world.sync()
    some = next(iter(await world.contacts()))
    r = await world.client.patch(
        f"{world.base}/records/contacts/{some}", json={"last_name": "Json"}
    )
    assert r.status_code == 200
    key = world.client.headers["authorization"].removeprefix("Bearer ")
    done = await asyncio.create_subprocess_exec(
        node, "http_diff.mjs", rig.suite.gateway, world.iid, key, f"contacts/{some}",
        "first_name", "FromYjsHttp", cwd=INTEROP, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(done.communicate(), 60)
    assert done.returncode == 0, err.decode()[-2000:]
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen["before"]["last_name"] == "Json" and seen["keys"] >= 30  # the platform's edit
    assert seen["after"]["first_name"] == "FromYjsHttp"
    assert (await world.contacts())[some]["first_name"] == "FromYjsHttp"
    await world.drained()
    assert (await world.crm_contacts())[some]["first_name"] == "FromYjsHttp"


async def test_an_oversized_sync_body_is_refused(world):
    body = write_message(Doc().get_state()) + write_message(b"\x00" * (11 * 1024 * 1024))
    r = await world.client.post(world.base + "/sync", content=body)
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"


async def test_streams_and_a_search_through_the_records(world):
    listed = (await world.client.get(world.base + "/streams")).json()["items"]
    contacts = next(s for s in listed if s["name"] == "contacts")
    assert contacts["primary_key"] and contacts["schema"]["properties"]["email"]
    await world.sync()
    crm = await world.crm_contacts()
    some = next(iter(crm.values()))
    # a field's text, in another case, finds the record; so does its key
    needle = some["email"].split("@")[0].upper()
    page = (await world.client.get(world.base + "/records",
                                   params={"stream": "contacts", "q": needle})).json()  # fmt: skip
    assert some["id"] in {r["id"] for r in page["items"]}
    assert all(needle.lower() in json.dumps(r).lower() for r in page["items"])
    assert page["scanned"] == 30 and page["next_cursor"] is None
    page = (await world.client.get(world.base + "/records",
                                   params={"stream": "contacts", "q": "no such text"})).json()  # fmt: skip
    assert page == {"items": [], "next_cursor": None, "scanned": 30}
    # a search that matches everything pages as the list does
    first = (await world.client.get(world.base + "/records",
                                    params={"stream": "contacts", "q": "@", "limit": 20})).json()  # fmt: skip
    rest = (await world.client.get(world.base + "/records", params={
        "stream": "contacts", "q": "@", "limit": 20, "cursor": first["next_cursor"]})).json()  # fmt: skip
    assert len(first["items"]) == 20 and len(rest["items"]) == 10 and rest["next_cursor"] is None
    assert {r["id"] for r in first["items"] + rest["items"]} == set(crm)
    r = await world.client.get(world.base + "/records", params={"stream": "contacts", "q": ""})
    assert r.status_code == 422
