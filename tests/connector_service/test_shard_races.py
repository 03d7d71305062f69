"""Shards in one process or two (DocStores on one database), at the moments that matter: a
layout cached before a stream got shards, a pull racing a platform change, a record too large
or too busy to be split away, first loads that must keep pages and deletions in order, a PATCH
racing a split, integers no float holds. (Found by reviewing the sharded sync; each failed
before its fix.)"""

from __future__ import annotations

import asyncio
import types
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pycrdt import Map

from connector_service.sync import access, encode, loads, pulls, record_service, repository
from connector_service.sync.document import PLATFORM
from connector_service.sync.service import enqueue_changes
from connector_service.sync.store import DocStore
from tests.connector_service.rig import bare_integration


async def _put(store: DocStore, iid: uuid.UUID, k: str, fields: dict[str, Any]) -> None:
    """What a PATCH does: the key's shard (made if its stream has none), the change, the outbox."""
    async with access.session_for(store, iid, k, create=True) as live:
        assert live is not None

        def apply(records: Map) -> None:
            if k in records:
                for name, value in fields.items():
                    records[k][name] = value
            else:
                records[k] = Map(fields)

        update, changes = live.transact(PLATFORM, apply)
        await store.append(live, PLATFORM, update, extra=enqueue_changes(iid, changes))


async def _pages(pages: list[dict]) -> AsyncIterator[dict]:
    for page in pages:
        yield page


def _counts() -> dict[str, int]:
    return {"pulled": 0, "deleted": 0, "pushed": 0}


async def test_a_layout_cached_before_a_stream_got_shards_never_says_no_record(database, dsn):
    iid = await bare_integration(database, dsn)
    a = DocStore(database, max_records=4)  # the replica that pushes
    b = DocStore(database, max_records=4)  # the one that serves a PATCH, or a first load
    for i in range(5):  # the root outgrows its bound and splits: contacts only
        await _put(a, iid, f"contacts/{i}", {"id": str(i)})
    layout = await a.router.layout(iid, fresh=True)
    assert layout.root is None and "deals" not in layout.streams
    await _put(b, iid, "deals/1", {"id": "1", "name": "Big deal"})  # deals' first shard, on b
    page = {"records": [{"id": str(i)} for i in range(2, 22)], "next_cursor": "c",
            "has_more": False}  # fmt: skip
    await loads.FirstLoad(b, database, iid, "notes", "id", True).run(_pages([page]), _counts())
    # what a's push reads for the outbox rows: a None would be pushed as a DELETE
    seen = await access.read(a, iid, ["deals/1", "notes/3"])
    assert seen["deals/1"] == {"id": "1", "name": "Big deal"} and seen["notes/3"] == {"id": "3"}
    # and what its records list shows
    listed = await record_service.list_records(
        a, types.SimpleNamespace(id=iid), {"name": "notes"}, after=None, limit=50
    )
    assert len(listed["items"]) == 20


async def test_a_pull_never_overwrites_a_platform_change_committed_while_it_waited(database, dsn):
    iid = await bare_integration(database, dsn)
    store = DocStore(database)
    await pulls.merge(store, iid, "contacts", "id", [{"id": "1", "email": "old@x"}],
                      [], None)  # fmt: skip
    async with store.session(iid) as live:  # a PATCH holds the (root) shard's session ...
        page = asyncio.create_task(pulls.merge(  # ... while a page of the same record starts
            store, iid, "contacts", "id", [{"id": "1", "email": "old@x"}], [], None))  # fmt: skip
        for _ in range(500):  # until the page waits for the session (5 s at most)
            if store._locks[iid]._waiters:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the page never waited for the session")

        def apply(records: Map) -> None:
            records["contacts/1"]["email"] = "new@x"

        update, changes = live.transact(PLATFORM, apply)
        await store.append(live, PLATFORM, update, extra=enqueue_changes(iid, changes))
    await page
    async with database.connection() as conn:
        assert await repository.pending_fields(conn, iid, "contacts") == {"1": {"email"}}
    assert (await access.read(store, iid, ["contacts/1"]))["contacts/1"]["email"] == "new@x"


async def test_a_record_too_large_or_too_busy_is_not_split_again_and_again(database, dsn):
    iid = await bare_integration(database, dsn)
    store = DocStore(database, max_bytes=64 * 1024)  # the bound scaled down (1 MiB by default)
    for n in range(30):  # one record over the byte bound, written 30 times: every write stored
        await _put(store, iid, "notes/1", {"id": "1", "body": "x" * 70_000, "n": n})
    for run in range(120):  # a small record the external system keeps changing
        record = {"id": "1", "lines": f'[{{"sku": "{run}", "pad": "{"y" * 2000}"}}]'}
        await pulls.merge(store, iid, "deals", "id", [record], [], None)
    async with database.connection() as conn:
        rows = await conn.fetch(
            "SELECT stream, bits, retired_at IS NOT NULL AS retired FROM sync_shards"
            " WHERE integration_id = $1",
            iid,
        )
    # the root split once into the two streams; neither record's shard split after that
    assert sorted((r["stream"], r["bits"]) for r in rows if not r["retired"]) == [
        ("deals", 0),
        ("notes", 0),
    ]
    assert len(rows) <= 4
    assert (await access.read(store, iid, ["notes/1"]))["notes/1"]["n"] == 29


async def test_a_first_load_keeps_its_pages_in_order(database, dsn):
    iid = await bare_integration(database, dsn)
    store = DocStore(database)
    pages = [
        {"records": [{"id": "1", "v": "a"}], "deleted": ["7"], "next_cursor": "c1",
         "has_more": True},
        {"records": [{"id": "7", "v": "restored"}], "next_cursor": "c2", "has_more": False},
    ]  # fmt: skip
    await loads.FirstLoad(store, database, iid, "contacts", "id", True).run(
        _pages(pages), _counts()
    )
    got = await access.read(store, iid, ["contacts/1", "contacts/7"])
    assert got == {"contacts/1": {"id": "1", "v": "a"}, "contacts/7": {"id": "7", "v": "restored"}}
    # past a shard's bound (staged, then built), the same
    big = DocStore(database, max_records=8)
    other = await bare_integration(database, dsn)
    pages[0]["records"] = [{"id": str(i), "v": "a"} for i in range(10, 30)]
    await loads.FirstLoad(big, database, other, "contacts", "id", True).run(
        _pages(pages), _counts()
    )
    got = await access.read(big, other, ["contacts/7", "contacts/12"])
    assert got == {
        "contacts/7": {"id": "7", "v": "restored"},
        "contacts/12": {"id": "12", "v": "a"},
    }


async def test_a_platform_deletion_waiting_in_the_outbox_survives_a_first_load(database, dsn):
    iid = await bare_integration(database, dsn)
    store = DocStore(database, max_records=8)
    external = [{"id": str(i), "v": "x"} for i in range(20)]
    await pulls.merge(store, iid, "contacts", "id", external[:5], [], None)
    async with store.session(iid) as live:  # DELETE /records/contacts/3, not pushed yet
        update, changes = live.transact(PLATFORM, lambda records: records.pop("contacts/3"))
        await store.append(live, PLATFORM, update, extra=enqueue_changes(iid, changes))
    async with database.connection() as conn:
        first = await loads.first_pull(conn, iid, "contacts", None, small=store.max_records)
    assert first is True  # a resync: no cursor, the root holds the stream
    page = {"records": external, "next_cursor": "c", "has_more": False}
    await loads.FirstLoad(store, database, iid, "contacts", "id", first).run(
        _pages([page]), _counts()
    )
    found = await access.read(store, iid, ["contacts/3", "contacts/4", "contacts/19"])
    assert found == {"contacts/3": None, "contacts/4": {"id": "4", "v": "x"},
                     "contacts/19": {"id": "19", "v": "x"}}  # fmt: skip


async def test_a_patch_racing_a_split_on_another_replica_is_placed_anew(database, dsn):
    iid = await bare_integration(database, dsn)
    a, b = DocStore(database), DocStore(database, max_records=4)
    for i in range(4):  # four records in the root: at b's bound, not over it
        await _put(a, iid, f"contacts/{i}", {"id": str(i)})
    real_append = a.append

    async def append_after_b_splits(live: Any, *args: Any, **kwargs: Any) -> Any:
        await _put(b, iid, "contacts/9", {"id": "9"})  # lands between a's session and append
        a.append = real_append  # once
        return await real_append(live, *args, **kwargs)

    a.append = append_after_b_splits  # type: ignore[method-assign]
    stream = {"name": "contacts", "primary_key": "id"}
    answer = await record_service.patch_record(
        a, types.SimpleNamespace(id=iid), stream, "1", {"name": "Ann"}
    )
    assert answer == {"id": "1", "name": "Ann"}
    assert (await access.read(b, iid, ["contacts/1"]))["contacts/1"] == {"id": "1", "name": "Ann"}


def test_integers_no_float_holds_stay_exact():
    from pycrdt import Doc

    load = encode.Load()
    values = [2**53 + 1, -(2**53 + 1), 2**63 - 1, 5, 2**53, 1.5]
    entry = load.entry("c/x", {f"v{i}": v for i, v in enumerate(values)})
    update, _ = encode.shard_update(load, list(encode.entries(entry)))
    doc = Doc()
    records = doc.get("records", type=Map)
    doc.apply_update(update)
    assert [records["c/x"][f"v{i}"] for i in range(len(values))] == values
