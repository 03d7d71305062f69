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
import zlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from pycrdt import Doc, Map, write_message

from common.roles import Role
from tests.connector_service.rig import Rig, install_crm, register, start_rig, stop_rig
from tests.connector_service.test_sync import World
from tests.connector_service.yclient import YClient
from tests.support import make_tenant

BOUND = 32


@pytest.fixture(scope="module")
def small(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    running = start_rig(dsn, tmp_path_factory.mktemp("shards"),
                        SEEDOS_SYNC_SHARD_MAX_RECORDS=str(BOUND))  # fmt: skip
    try:
        yield running
    finally:
        stop_rig(running)


async def _world(rig: Rig, dsn: str, *, contacts: int, page_size: int = 50) -> World:
    slug = await register(dsn, rig.crm_connector.url)
    t = await make_tenant(dsn, role=Role.editor)
    crm = httpx.AsyncClient(base_url=rig.crm.url, headers={"X-API-Key": rig.crm_key}, timeout=30)
    await crm.post("/admin/reset")
    seeded = await crm.post("/admin/seed", json={"contacts": contacts, "companies": 3})
    assert seeded.status_code < 300, seeded.text
    client = httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers, timeout=30)
    iid = await install_crm(client, rig, slug, page_size=page_size)
    r = await client.patch(f"/api/v1/integrations/{iid}", json={"sync_interval_seconds": 0})
    assert r.status_code == 200, r.text
    return World(client, crm, iid)


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
            await world.drained()
        finally:
            await c.close()
        mine = await world.contacts()
        assert mine[ids[0]]["first_name"] == "After" and len(mine) == 40
        assert (await world.crm.get(f"/v1/contacts/{ids[0]}")).json()["first_name"] == "After"
    finally:
        await world.client.aclose()
        await world.crm.aclose()
