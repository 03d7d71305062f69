"""Sync documents in PostgreSQL: the log, compaction, and two processes' views of one document."""

from __future__ import annotations

import uuid

import pytest
from pycrdt import Doc, Map

from connector_service.sync.document import CLIENT, EXTERNAL, PLATFORM, new_live
from connector_service.sync.lib0 import lacks
from connector_service.sync.store import DocStore
from tests.connector_service.rig import bare_integration


async def _write(store: DocStore, iid: uuid.UUID, key: str, value: str) -> None:
    async with store.session(iid) as live:

        def change(records: Map) -> None:
            if key in records:
                records[key]["v"] = value
            else:
                records[key] = Map({"v": value})

        update, _ = live.transact(PLATFORM, change)
        await store.append(live, PLATFORM, update)


async def test_compaction_keeps_everything_and_replicas_catch_up(database, dsn):
    iid = await bare_integration(database, dsn)
    first = DocStore(database, compact_rows=3)
    other = DocStore(database, compact_rows=1000)  # another replica, never compacting itself
    await _write(first, iid, "contacts/1", "a")
    async with other.session(iid) as live:  # the other replica loads the log
        assert live.get("contacts/1") == {"v": "a"}
    for i in range(2, 6):
        await _write(first, iid, f"contacts/{i}", str(i))
    async with database.connection() as conn:
        row = await conn.fetchrow(  # the install's root shard: its id is the install's
            "SELECT snapshot, log_through, bytes FROM sync_shards WHERE id = $1", iid
        )
        left = await conn.fetchval("SELECT count(*) FROM sync_updates WHERE shard_id = $1", iid)
    assert row["snapshot"] and row["log_through"] > 0 and row["bytes"] == len(row["snapshot"])
    assert left < 5  # folded into the snapshot
    # the other replica is behind the compaction point: it catches up through the snapshot
    await _write(first, iid, "contacts/1", "b")
    async with other.session(iid) as live:
        seen = live.records.to_py()
    assert seen == {
        "contacts/1": {"v": "b"},
        **{f"contacts/{i}": {"v": str(i)} for i in range(2, 6)},
    }
    # a cold load (a restart) sees the same
    async with DocStore(database).session(iid) as live:
        assert live.records.to_py() == seen
    # and the other replica's writes interleave with the first's, in log order
    await _write(other, iid, "contacts/7", "x")
    async with first.session(iid) as live:
        assert live.get("contacts/7") == {"v": "x"}


async def test_a_failed_append_leaves_nothing_in_memory(database, dsn):
    iid = await bare_integration(database, dsn)
    store = DocStore(database)
    await _write(store, iid, "contacts/1", "kept")

    async def refuse(_conn, _update_id):
        raise RuntimeError("the database said no")

    async with store.session(iid) as live:
        update, _ = live.transact(EXTERNAL, lambda records: records.__setitem__(
            "contacts/2", Map({"v": "lost"})))  # fmt: skip
        with pytest.raises(RuntimeError):
            await store.append(live, EXTERNAL, update, extra=refuse)
    async with store.session(iid) as live:  # loaded again from what is durable
        assert live.records.to_py() == {"contacts/1": {"v": "kept"}}


def test_a_tail_diff_carries_deletions_the_peer_missed():
    """A deletion made without an insertion leaves the state vector as it was: a peer that
    missed it, and whose state matches a later point of the tail, must still get it."""
    live = new_live(uuid.uuid4())
    live.deletions = live.doc.get_update(live.doc.get_state())  # as a load does
    live.transact(PLATFORM, lambda r: r.__setitem__("contacts/1", Map({"v": "1"})))
    peer = Doc()
    peer_records = peer.get("records", type=Map)
    peer.apply_update(live.diff())
    live.transact(PLATFORM, lambda r: r.pop("contacts/1"))  # the peer is away
    before = peer.get_state()
    with peer.transaction():
        peer_records["contacts/2"] = Map({"v": "2"})
    live.apply(peer.get_update(before), "client")
    live.transact(PLATFORM, lambda r: r.__setitem__("contacts/3", Map({"v": "3"})))
    peer.apply_update(live.diff(peer.get_state()))
    assert (
        sorted(peer_records.to_py()) == sorted(live.records.to_py()) == ["contacts/2", "contacts/3"]
    )


def test_apply_returns_what_the_document_integrated_not_what_it_was_sent():
    """Items that wait for an item the document lacks (pending) integrate with the update that
    brings it, and are in what apply returns then (what is logged): memory never holds more
    than the log. lib0.lacks tells the caller, which refuses such an update, when it waits."""
    live = new_live(uuid.uuid4())
    first_doc = Doc()
    first_doc.get("records", type=Map)["contacts/1"] = Map({"v": "first"})
    first = first_doc.get_update()
    second_doc = Doc()
    second_doc.apply_update(first)
    second_doc.get("records", type=Map)["contacts/1"]["w"] = "second"
    second = second_doc.get_update(first_doc.get_state())
    before = live.state_vector()
    assert live.apply(second, CLIENT) == (b"", {})  # waits for the item it builds on
    assert lacks(before, second) and lacks(live.state_vector(), second)
    done, changes = live.apply(first, CLIENT)
    assert done != first and changes == {"contacts/1": {"v", "w"}}
    logged = Doc()
    logged.apply_update(done)
    assert (
        logged.get("records", type=Map).to_py()
        == live.records.to_py()
        == {"contacts/1": {"v": "first", "w": "second"}}
    )
    assert not lacks(live.state_vector(), second) and not lacks(live.state_vector(), first)


def test_a_deletion_of_an_item_the_document_lacks_waits():
    """lacks() reads only the clocks of the clients an update deletes from: a deletion of an
    item the document has integrates; one of an item it lacks waits (pending)."""
    from connector_service.sync.lib0 import clocks_of, decode_state_vector

    writers = [Doc() for _ in range(5)]  # a document many clients wrote to
    live = new_live(uuid.uuid4())
    for n, writer in enumerate(writers):
        writer.apply_update(live.doc.get_update())
        before = writer.get_state()
        writer.get("records", type=Map)[f"contacts/{n}"] = Map({"v": str(n)})
        live.apply(writer.get_update(before), CLIENT)
    author = writers[2]
    state = live.state_vector()
    everyone = decode_state_vector(state)
    assert clocks_of(state, {author.client_id}) == {author.client_id: everyone[author.client_id]}
    assert clocks_of(state, {12345}) == {}
    before = author.get_state()
    author.get("records", type=Map).pop("contacts/2")
    deletion = author.get_update(before)
    assert not lacks(state, deletion)
    unseen = Doc()  # an item the document never received, deleted
    unseen.get("records", type=Map)["contacts/9"] = Map({"v": "9"})
    hidden = unseen.get_state()
    unseen.get("records", type=Map).pop("contacts/9")
    assert lacks(state, unseen.get_update(hidden))


class _Watching:
    """A broadcaster whose clients follow the given documents."""

    def __init__(self, *watched: uuid.UUID) -> None:
        self.watched = set(watched)

    def watching(self, integration_id: uuid.UUID) -> bool:
        return integration_id in self.watched

    def publish(self, integration_id, update, source=None) -> None:
        pass

    def invalidate(self, integration_id) -> None:
        pass


async def test_memory_budget_drops_idle_documents_and_reloads_them(database, dsn):
    """Under a budget of about two documents, the least recently used one without clients is
    dropped after a session; it loads again, whole, when asked for; one with clients stays."""
    a, b, c, followed = [await bare_integration(database, dsn) for _ in range(4)]
    store = DocStore(database, broadcaster=_Watching(followed), idle_seconds=0)
    for iid in (a, b, c, followed):
        for i in range(20):
            await _write(store, iid, f"contacts/{i}", f"{iid}-{i}")
    async with store.session(a) as live:
        one = live.memory_estimate()
    assert one > 0
    store.held.memory_bytes = 2 * one + one // 2  # room for two of them
    async with store.session(b) as live:
        assert live.get("contacts/3") == {"v": f"{b}-3"}
    assert b in store.held._docs and followed in store.held._pinned
    assert (
        c not in store.held._docs and a not in store.held._docs
    )  # dropped, least recently used first
    async with store.session(c) as live:  # loaded again on demand, nothing lost
        assert len(live.records) == 20 and live.get("contacts/19") == {"v": f"{c}-19"}
    async with store.session(followed) as live:
        assert live.get("contacts/0") == {"v": f"{followed}-0"}
    assert followed in store.held._pinned  # never dropped while clients follow it


async def test_documents_in_use_are_not_dropped_until_idle(database, dsn):
    """Two documents in use at once, each over half the budget, do not evict each other page
    after page: a document is dropped only once idle, by the next session or sweep."""
    a, b = [await bare_integration(database, dsn) for _ in range(2)]
    store = DocStore(database, idle_seconds=3600)
    for iid in (a, b):
        await _write(store, iid, "contacts/1", "x")
    store.held.memory_bytes = 1
    await _write(store, a, "contacts/2", "y")
    assert a in store.held._docs and b in store.held._docs  # over budget, but neither is idle
    store.held.idle_seconds = 0
    store.sweep()
    assert not store.held._docs  # idle now: both dropped
