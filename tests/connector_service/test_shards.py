"""Sharded sync end to end, with shards bounded at 32 records so that a few hundred records make
many: first loads built into shards, splits under concurrent edits, the shard API, shard rooms
and the whole-install room refusing a split install, eviction with clients, compaction killed
midway, two replicas.

Real processes: a suite of its own (SEEDOS_SYNC_SHARD_MAX_RECORDS=32), the demo CRM and the
example connector (rig.py)."""

from __future__ import annotations

import asyncio
import base64
import secrets
import signal
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace

import aiohttp
import httpx
import pytest
from pycrdt import Doc, Map, write_message

from common.internal_auth import Principal
from common.roles import Role
from seedos_cli.supervisor import SERVICES
from seedos_sdk.testing.process import start
from tests.conftest import ROOT, suite_env
from tests.connector_service.rig import (
    Rig,
    fetch,
    install_crm,
    register,
    start_rig,
    stop_rig,
)
from tests.connector_service.test_sync import World
from tests.connector_service.test_sync_ws import node_events, spawn_node
from tests.connector_service.yclient import YClient
from tests.support import connected, make_tenant, metric_total

BOUND = 32
COMPACT_ROWS = 8


@pytest.fixture(scope="module")
def small(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    running = start_rig(dsn, tmp_path_factory.mktemp("shards"), SEEDOS_SYNC_SHARD_MAX_RECORDS=
                        str(BOUND), SEEDOS_SYNC_COMPACT_ROWS=str(COMPACT_ROWS))  # fmt: skip
    try:
        yield running
    finally:
        stop_rig(running)


_SLUGS: dict[str, str] = {}  # one catalog entry for the module (tests search the catalog too)


async def _world(rig: Rig, dsn: str, *, contacts: int, page_size: int = 50) -> World:
    slug = _SLUGS.get(rig.crm_connector.url)
    if slug is None:
        slug = _SLUGS[rig.crm_connector.url] = await register(dsn, rig.crm_connector.url)
    t = await make_tenant(dsn, role=Role.editor)
    crm = httpx.AsyncClient(base_url=rig.crm.url, headers={"X-API-Key": rig.crm_key}, timeout=30)
    await crm.post("/admin/reset")
    seeded = await crm.post("/admin/seed", json={"contacts": contacts, "companies": 3})
    assert seeded.status_code < 300, seeded.text
    client = httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers, timeout=30)
    iid = await install_crm(client, rig, slug, page_size=page_size)
    r = await client.patch(f"/api/v1/integrations/{iid}", json={"sync_interval_seconds": 0})
    assert r.status_code == 200, r.text
    world = World(client, crm, iid)
    world.tenant = t  # type: ignore[attr-defined]
    return world


@pytest.fixture
async def world(small: Rig, dsn: str) -> AsyncIterator[World]:
    found = await _world(small, dsn, contacts=300)
    try:
        yield found
    finally:
        await found.client.aclose()
        await found.crm.aclose()


async def _shards(world: World, stream: str | None = None) -> list[dict]:
    out, cursor = [], None
    while True:
        params = {"limit": 7, **({"stream": stream} if stream else {}),
                  **({"cursor": cursor} if cursor else {})}  # fmt: skip
        r = await world.client.get(world.base + "/sync/shards", params=params)
        assert r.status_code == 200, r.text
        out += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return out


def _covers(shards: list[dict], stream: str, key: str) -> list[dict]:
    """The shards of ``stream`` that hold ``key``, by the documented rule."""
    h = zlib.crc32(f"{stream}/{key}".encode())
    return [s for s in shards if s["stream"] == stream and h >> (32 - s["bits"]) == s["slot"]]


async def test_a_first_load_builds_shards_any_client_can_place_keys_in(world):
    status = await world.sync()
    assert status["last_run"]["outcome"] == "succeeded", status
    assert status["loading"] == {}
    mine = await world.contacts()
    crm = await world.crm_contacts()
    assert set(mine) == set(crm) and len(mine) == 300
    shards = await _shards(world)
    assert all(s["stream"] is not None for s in shards)  # the root is split
    contacts = [s for s in shards if s["stream"] == "contacts"]
    assert sum(s["records"] for s in contacts) == 300
    assert all(s["records"] <= BOUND for s in contacts)
    # every key in exactly one shard, by the hash rule, and the API agrees
    keys = sorted(mine)[:40]
    r = await world.client.get(world.base + "/sync/shards/for",
                               params={"stream": "contacts", "keys": keys})  # fmt: skip
    assert r.status_code == 200, r.text
    for item in r.json()["items"]:
        (holder,) = _covers(contacts, "contacts", item["key"])
        assert item["shard"] == holder["id"]
    # a shard's document holds just its records, in the usual layout
    one = contacts[0]
    doc = Doc()
    records = doc.get("records", type=Map)
    body = write_message(b"\x00") + write_message(b"")
    r = await world.client.post(world.base + "/sync", params={"shard": one["id"]}, content=body)
    assert r.status_code == 200, r.text
    doc.apply_update(r.content)
    assert len(records) == one["records"]
    assert all(_covers([one], "contacts", k.partition("/")[2]) for k in records)
    assert base64.b64decode(one["state_vector"]) == doc.get_state()
    # the whole-install endpoints refuse, naming where to go
    r = await world.client.get(world.base + "/sync/state-vector")
    assert r.status_code == 410 and r.json()["code"] == "shard_split", r.text


async def test_a_split_under_concurrent_edits_loses_nothing(small, dsn):
    world = await _world(small, dsn, contacts=20)  # fits the root: no split yet
    try:
        await world.sync()
        (root,) = await _shards(world)
        assert root["stream"] is None and root["records"] == 23
        ids = sorted(await world.contacts())

        def mine_of(i: int, n: int) -> str:  # writer i's records: five of its own
            return ids[i * 5 + n % 5]

        async def edit(i: int) -> None:  # each writer changes its own records, many times
            for n in range(12):
                key = mine_of(i, n)
                r = await world.client.patch(f"{world.base}/records/contacts/{key}",
                                             json={"first_name": f"w{i}-{n}"})  # fmt: skip
                assert r.status_code == 200, r.text

        async def create() -> list[str]:  # new records make the root outgrow its bound
            made = []
            for n in range(40):
                key = f"new-{n}-{secrets.token_hex(2)}"
                r = await world.client.patch(f"{world.base}/records/contacts/{key}",
                                             json={"email": f"{key}@example.com"})  # fmt: skip
                assert r.status_code == 200, r.text
                made.append(key)
            return made

        made, *_ = await asyncio.gather(create(), *(edit(i) for i in range(4)))
        shards = await _shards(world)
        assert all(s["stream"] for s in shards) and len(shards) > 2
        mine = await world.contacts()
        assert set(made) <= set(mine) and len(mine) == 60
        last = {mine_of(i, n): f"w{i}-{n}" for i in range(4) for n in range(12)}
        assert {k: mine[k]["first_name"] for k in last} == last  # every last edit, acknowledged
        # and everything reaches the CRM
        await world.drained()
        crm = await world.crm_contacts()
        assert {k: crm[k]["first_name"] for k in last} == last
        assert all(crm[k]["email"] == f"{k}@example.com" for k in made)
    finally:
        await world.client.aclose()
        await world.crm.aclose()


async def _seen(world: World, key: str, field: str, value: str) -> None:
    """Wait until the JSON API shows a WebSocket client's edit (committed)."""
    deadline = time.monotonic() + 15
    while True:
        r = await world.client.get(f"{world.base}/records/contacts/{key}")
        if r.status_code == 200 and r.json().get(field) == value:
            return
        assert time.monotonic() < deadline, r.text
        await asyncio.sleep(0.05)


def _ws(rig: Rig, world: World, **query: str) -> str:
    url = rig.suite.gateway.replace("http", "ws", 1) + world.base + "/sync/ws"
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def _auth(world: World) -> dict[str, str]:
    return {"Authorization": world.client.headers["Authorization"]}


async def _holder(world: World, key: str) -> str:
    r = await world.client.get(world.base + "/sync/shards/for",
                               params={"stream": "contacts", "keys": [key]})  # fmt: skip
    assert r.status_code == 200, r.text
    return r.json()["items"][0]["shard"]


async def test_the_whole_install_room_refuses_a_split_install(world, small):
    await world.sync()
    client = await YClient.connect(_ws(small, world), headers=_auth(world), sync=False)
    try:
        assert await client.wait_closed() == 4410
        assert "sync/ws?shard=" in client.close_reason
    finally:
        await client.close()


async def test_a_shard_room_edits_its_records_with_the_json_api_and_the_crm(world, small):
    await world.sync()
    key = sorted(await world.contacts())[3]
    shard_id = await _holder(world, key)
    client = await YClient.connect(_ws(small, world, shard=shard_id), headers=_auth(world))
    try:
        assert client.record(f"contacts/{key}") is not None
        shards = {s["id"]: s for s in await _shards(world)}
        assert len(client.snapshot()) == shards[shard_id]["records"]  # this shard, not all
        # the JSON API's change reaches the room, the room's reaches the CRM
        r = await world.client.patch(f"{world.base}/records/contacts/{key}",
                                     json={"phone": "+1 555 0199"})  # fmt: skip
        assert r.status_code == 200
        await client.until(lambda: client.record(f"contacts/{key}")["phone"] == "+1 555 0199")
        await client.edit(lambda records: records[f"contacts/{key}"].__setitem__(
            "last_name", "Roomy"))  # fmt: skip
        await _seen(world, key, "last_name", "Roomy")  # committed, so in the outbox
        await world.drained()
        assert (await world.crm.get(f"/v1/contacts/{key}")).json()["last_name"] == "Roomy"
        # a record of another shard is refused in this room, and nothing changes
        here = next(s for s in shards.values() if s["id"] == shard_id)
        other = next(f"x{n}" for n in range(1000) if not _covers([here], "contacts", f"x{n}"))
        await client.edit(lambda records: records.__setitem__(
            f"contacts/{other}", Map({"id": other})))  # fmt: skip
        assert await client.wait_closed() == 1008
        assert "another shard" in client.close_reason
        assert other not in await world.contacts()
    finally:
        await client.close()


async def test_clients_of_a_shard_that_splits_move_and_lose_nothing(small, dsn):
    world = await _world(small, dsn, contacts=20)
    try:
        await world.sync()
        ids = sorted(await world.contacts())
        root = _ws(small, world)
        a = await YClient.connect(root, headers=_auth(world))
        b = await YClient.connect(root, headers=_auth(world))
        try:
            # acknowledged edits from a room client, then growth that splits the root
            await a.edit(lambda records: records[f"contacts/{ids[0]}"].__setitem__(
                "first_name", "Before"))  # fmt: skip
            await b.until(lambda: b.record(f"contacts/{ids[0]}")["first_name"] == "Before")
            for n in range(20):
                r = await world.client.patch(f"{world.base}/records/contacts/grow-{n}",
                                             json={"email": f"g{n}@example.com"})  # fmt: skip
                assert r.status_code == 200
            assert await a.wait_closed() == 4410 and await b.wait_closed() == 4410
            assert a.close_reason.startswith("shard_split")
        finally:
            await a.close()
            await b.close()
        # following the documented steps: find the shard of the record, join its room
        shard_id = await _holder(world, ids[0])
        c = await YClient.connect(_ws(small, world, shard=shard_id), headers=_auth(world))
        try:
            assert c.record(f"contacts/{ids[0]}")["first_name"] == "Before"
            await c.edit(lambda records: records[f"contacts/{ids[0]}"].__setitem__(
                "first_name", "After"))  # fmt: skip
            await _seen(world, ids[0], "first_name", "After")
            await world.drained()
        finally:
            await c.close()
        mine = await world.contacts()
        assert mine[ids[0]]["first_name"] == "After" and len(mine) == 40
        assert (await world.crm.get(f"/v1/contacts/{ids[0]}")).json()["first_name"] == "After"
    finally:
        await world.client.aclose()
        await world.crm.aclose()


async def test_an_unmodified_y_websocket_client_edits_through_its_shard_room(world, small):
    """The JavaScript ``yjs`` + ``y-websocket`` packages (tests/sync_interop/shard_room.mjs),
    through the gateway with a ticket, in the room of the shard that holds the record."""
    await world.sync()
    key = sorted(await world.contacts())[7]
    live = SimpleNamespace(rig=small, tenant=world.tenant, iid=world.iid)
    plan = {"stream": "contacts", "key": key, "edit": {"first_name": "FromNode"},
            "expect": {"phone": "FromJson"}, "timeout_ms": 30000}  # fmt: skip
    proc = await spawn_node(live, "shard_room.mjs", plan)
    try:
        synced, _ = await node_events(proc, until="edited")
        assert synced["shard"] == await _holder(world, key) and synced["has"]
        shards = {s["id"]: s for s in await _shards(world)}
        assert synced["size"] == shards[synced["shard"]]["records"] < 300
        r = await world.client.patch(f"{world.base}/records/contacts/{key}",
                                     json={"phone": "FromJson"})  # fmt: skip
        assert r.status_code == 200
        converged = (await node_events(proc, until="converged"))[-1]
        assert converged["record"]["first_name"] == "FromNode"
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    await _seen(world, key, "first_name", "FromNode")
    await world.drained()
    assert (await world.crm.get(f"/v1/contacts/{key}")).json()["first_name"] == "FromNode"


async def test_two_replicas_converge_per_shard_and_evict_under_a_small_budget(
    world, small, dsn, tmp_path
):
    """A second replica with a 1 MB budget: reading every shard evicts the idle ones (never
    the one its client is in), which load again on demand; clients of one shard on the two
    replicas converge, and the JSON API's writes through either reach them."""
    await world.sync()
    suite = small.suite
    env = suite_env(dsn, suite.keys, suite.ports, SEEDOS_SYNC_MEMORY_MB="1",
                    SEEDOS_SYNC_SHARD_MAX_RECORDS=str(BOUND))  # fmt: skip
    second = start("connector_service.app:create_app", factory=True, cwd=ROOT, env=env,
                   log_path=tmp_path / "replica.log", ready_path="/readyz")  # fmt: skip
    token = suite.keys.signer().mint(
        Principal(tenant_id=world.tenant.tenant_id, subject="test", role=Role.editor.value),
        audience="connector_service",
    )
    headers = {"Authorization": f"Bearer {token}"}
    direct = httpx.AsyncClient(base_url=second.url, headers=headers, timeout=30)
    ids = sorted(await world.contacts())
    shard_id = await _holder(world, ids[0])
    room = f"/sync/ws?shard={shard_id}"
    a = await YClient.connect(suite.connector_service.replace("http", "ws", 1) + world.base
                              + room, headers=headers)  # fmt: skip
    b = await YClient.connect(second.url.replace("http", "ws", 1) + world.base + room,
                              headers=headers)  # fmt: skip
    try:
        assert a.snapshot() == b.snapshot() and len(a.records) > 0
        key = f"contacts/{ids[0]}"
        for round_ in range(3):
            # the second replica reads every record: more than its budget holds
            everything = {}
            cursor = None
            while True:
                params = {
                    "stream": "contacts",
                    "limit": 200,
                    **({"cursor": cursor} if cursor else {}),
                }
                page = (await direct.get(world.base + "/records", params=params)).json()
                everything |= {r["id"]: r for r in page["items"]}
                if (cursor := page["next_cursor"]) is None:
                    break
            assert len(everything) == 300
            metrics = (await direct.get("/metrics")).text
            assert metric_total(metrics, "seedos_sync_documents_evicted_total") > 0
            assert metric_total(metrics, "seedos_sync_memory_bytes") <= 4 * 2**20
            # the shard with clients stayed, and both replicas' clients converge
            await a.edit(lambda r, n=round_: r[key].__setitem__("title", f"a{n}"))
            await b.until(lambda n=round_: (b.record(key) or {}).get("title") == f"a{n}")
            await b.edit(lambda r, n=round_: r[key].__setitem__("phone", f"b{n}"))
            await a.until(lambda n=round_: (a.record(key) or {}).get("phone") == f"b{n}")
            # a write through the second replica to an evicted shard loads it again
            other = ids[-1 - round_]
            r = await direct.patch(f"{world.base}/records/contacts/{other}",
                                   json={"last_name": f"evicted{round_}"})  # fmt: skip
            assert r.status_code == 200, r.text
            assert (await world.contacts())[other]["last_name"] == f"evicted{round_}"
        assert a.snapshot() == b.snapshot()
        assert (await world.contacts())[ids[0]]["phone"] == "b2"
    finally:
        await a.close()
        await b.close()
        await direct.aclose()
        second.stop()


async def test_kill_9_during_a_shard_compaction_loses_nothing_acknowledged(small, dsn):
    """connector_service killed while it folds a shard's log (held there: the test locks a log
    row, so the compaction's DELETE waits with its snapshot written but not committed)."""
    world = await _world(small, dsn, contacts=300)
    try:
        await world.sync()
        ids = sorted(await world.contacts())
        shard_id = await _holder(world, ids[0])
        same = [k for k in ids if await _holder(world, k) == shard_id]
        async with connected(dsn) as blocker:
            # a first edit puts a row in the shard's log; the test locks it
            r = await world.client.patch(f"{world.base}/records/contacts/{same[0]}",
                                         json={"title": "e0"})  # fmt: skip
            assert r.status_code == 200
            tx = blocker.transaction()
            await tx.start()
            locked = await blocker.fetch("SELECT id FROM sync_updates WHERE shard_id = $1"
                                         " FOR UPDATE", uuid.UUID(shard_id))  # fmt: skip
            assert locked
            acknowledged = {same[0]: "e0"}
            for n in range(1, COMPACT_ROWS + 2):  # past the compaction threshold
                pk = same[n % len(same)]
                try:  # the edit that makes the log due waits for its compaction: no answer
                    r = await world.client.patch(f"{world.base}/records/contacts/{pk}",
                                                 json={"title": f"e{n}"}, timeout=2)  # fmt: skip
                except httpx.ReadTimeout:
                    break
                assert r.status_code == 200, r.text
                acknowledged[pk] = f"e{n}"
            deadline = time.monotonic() + 10
            while not await _compaction_waiting(dsn):
                assert time.monotonic() < deadline, "the compaction never started"
                await asyncio.sleep(0.05)
            service = small.suite.supervisor.procs["connector_service"]
            service.send_signal(signal.SIGKILL)
            service.wait()
            await tx.rollback()
        small.suite.supervisor.start(SERVICES[0], small.suite.ports["connector_service"])
        small.suite.supervisor.wait_ready({"connector_service": small.suite.connector_service})
        mine = await world.contacts()
        assert {pk: mine[pk]["title"] for pk in acknowledged} == acknowledged
        # and the shard folds its log the next time
        for n in range(COMPACT_ROWS + 1):
            r = await world.client.patch(f"{world.base}/records/contacts/{same[0]}",
                                         json={"title": f"later{n}"})  # fmt: skip
            assert r.status_code == 200
        rows = await fetch(dsn, "SELECT count(*) AS n FROM sync_updates WHERE shard_id = $1",
                           uuid.UUID(shard_id))  # fmt: skip
        assert rows[0]["n"] <= COMPACT_ROWS
        assert (await world.contacts())[same[0]]["title"] == f"later{COMPACT_ROWS}"
    finally:
        await world.client.aclose()
        await world.crm.aclose()


async def _compaction_waiting(dsn: str) -> bool:
    rows = await fetch(dsn, "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type ="
                       " 'Lock' AND query LIKE 'DELETE FROM sync_updates%'")  # fmt: skip
    return rows[0]["n"] > 0


async def test_bad_shard_requests_are_refused_clearly(world, small, dsn):
    await world.sync()
    shards = await _shards(world)
    one = shards[1]["id"]
    sv = write_message(b"\x00") + write_message(b"")
    cases = {
        "missing": (uuid.uuid4(), 404, "shard_not_found"),
        "root of a split install": (world.iid, 410, "shard_split"),
    }
    for why, (shard, status, code) in cases.items():
        r = await world.client.post(world.base + "/sync", params={"shard": str(shard)}, content=sv)
        assert (r.status_code, r.json()["code"]) == (status, code), (why, r.text)
    r = await world.client.get(world.base + "/sync/state-vector", params={"shard": "nope"})
    assert r.status_code == 422
    # another install's shard is not this one's
    other = await _world(small, dsn, contacts=3)
    try:
        r = await other.client.get(other.base + "/sync/state-vector", params={"shard": one})
        assert r.status_code == 404 and r.json()["code"] == "shard_not_found"
    finally:
        await other.client.aclose()
        await other.crm.aclose()
    r = await world.client.get(world.base + "/sync/shards/for", params={"stream": "contacts"})
    assert r.status_code == 422  # no keys
    r = await world.client.get(world.base + "/sync/shards/for",
                               params={"stream": "nope", "keys": ["1"]})  # fmt: skip
    assert r.status_code == 422 and r.json()["code"] == "unknown_stream"
    r = await world.client.get(world.base + "/sync/shards/for",
                               params={"stream": "contacts", "keys": [str(n) for n in range(201)]})  # fmt: skip
    assert r.status_code == 422
    r = await world.client.get(world.base + "/sync/shards", params={"cursor": "garbage"})
    assert r.status_code == 422
    # a shard room that does not exist is refused at the handshake
    bad = await _refused_ws(_ws(small, world, shard=str(uuid.uuid4())), _auth(world))
    assert bad == 403


async def _refused_ws(url: str, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with session.ws_connect(url, headers=headers):
                pass
    return refused.value.status
