"""Records the platform created under keys it made up, moved to the keys the external system
gave them when it created them (pulls.adopt): the document and the outbox in one transaction,
a platform change made meanwhile following the record, across shards too."""

from __future__ import annotations

import uuid

from connector_service.sync import access, pulls, repository
from connector_service.sync.document import PLATFORM
from connector_service.sync.service import enqueue_changes
from connector_service.sync.store import DocStore
from tests.connector_service.rig import bare_integration, fetch
from tests.connector_service.test_shard_races import _put


async def _outbox(dsn: str, iid: uuid.UUID) -> dict[str, tuple[list[str], bool]]:
    rows = await fetch(dsn, "SELECT record_key, fields, deleted FROM sync_outbox"
                            " WHERE integration_id = $1", iid)  # fmt: skip
    return {r["record_key"]: (sorted(r["fields"]), r["deleted"]) for r in rows}


async def _pushed(database, iid: uuid.UUID, key: str) -> None:
    """What a successful push of ``key``'s outbox row does to it."""
    async with database.connection() as conn:
        row = await conn.fetchrow("SELECT id, version FROM sync_outbox WHERE integration_id = $1"
                                  " AND record_key = $2", iid, key)  # fmt: skip
        await repository.done(conn, row["id"], row["version"])


async def test_a_created_record_moves_to_the_key_the_system_gave_it(database, dsn):
    iid = await bare_integration(database, dsn)
    store = DocStore(database, max_records=4)
    for i in range(6):  # several shards: the two keys may well be in different ones
        await pulls.merge(store, iid, "customers", "id", [{"id": f"cus_{i}"}], [], None)
    await _put(store, iid, "customers/made-here", {"id": "made-here", "email": "g@x.io"})
    await _pushed(database, iid, "made-here")
    answer = {"id": "cus_new", "email": "g@x.io", "created": 1700000000, "metadata": {}}
    await pulls.adopt(store, iid, "customers", "id", [("made-here", answer)])
    held = await access.read(store, iid, ["customers/made-here", "customers/cus_new"])
    assert held["customers/made-here"] is None
    assert held["customers/cus_new"] == {"id": "cus_new", "email": "g@x.io",
                                         "created": 1700000000, "metadata": "{}"}  # fmt: skip
    assert await _outbox(dsn, iid) == {}  # the move is no platform change: nothing to push
    # a pull of the record Stripe now lists changes nothing and adds no second one
    await pulls.merge(store, iid, "customers", "id", [answer], [], None)
    layout = await store.router.layout(iid, fresh=True)
    total = 0
    for shard in layout.of_stream("customers"):
        async with store.session(shard.id, transient=True) as live:
            total += sum(1 for k in live.records if k.startswith("customers/"))
    assert total == 7


async def test_a_change_made_meanwhile_follows_the_record(database, dsn):
    iid = await bare_integration(database, dsn)
    store = DocStore(database)
    await _put(store, iid, "customers/a", {"id": "a", "email": "a@x.io", "name": "A"})
    await _put(store, iid, "customers/b", {"id": "b", "email": "b@x.io"})
    await _pushed(database, iid, "a")
    await _pushed(database, iid, "b")
    # edited, and deleted, on the platform while their creates were under way
    await _put(store, iid, "customers/a", {"name": "Ada"})
    async with access.session_for(store, iid, "customers/b") as live:
        assert live is not None

        def drop(records):
            del records["customers/b"]

        update, changes = live.transact(PLATFORM, drop)
        await store.append(live, PLATFORM, update, extra=enqueue_changes(iid, changes))
    await pulls.adopt(store, iid, "customers", "id", [
        ("a", {"id": "cus_a", "email": "a@x.io", "name": "A"}),
        ("b", {"id": "cus_b", "email": "b@x.io"}),
    ])  # fmt: skip
    held = await access.read(store, iid, ["customers/a", "customers/cus_a", "customers/cus_b"])
    assert held["customers/a"] is None and held["customers/cus_b"] is None
    assert held["customers/cus_a"] == {"id": "cus_a", "email": "a@x.io", "name": "Ada"}
    # the edit will be written under Stripe's key, and the deletion deletes Stripe's record
    assert await _outbox(dsn, iid) == {"cus_a": (["name"], False), "cus_b": ([], True)}


async def test_a_record_edited_while_its_create_was_under_way_keeps_the_new_key(database, dsn):
    iid = await bare_integration(database, dsn)
    store = DocStore(database)
    await _put(store, iid, "customers/a", {"id": "a", "email": "a@x.io"})
    # edited before the create's outbox row is settled: the row keeps every field, the key too
    await _put(store, iid, "customers/a", {"email": "ada@x.io"})
    await pulls.adopt(store, iid, "customers", "id", [("a", {"id": "cus_a", "email": "a@x.io"})])
    held = await access.read(store, iid, ["customers/cus_a"])
    # the key field is Stripe's: a write of id "a" would create the customer a second time
    assert held["customers/cus_a"] == {"id": "cus_a", "email": "ada@x.io"}


async def test_a_new_key_another_move_leaves_is_taken_by_the_record_moving_there(database, dsn):
    iid = await bare_integration(database, dsn)
    store = DocStore(database)
    # keys made up on the platform that the system numbers otherwise (GitHub's issues)
    await _put(store, iid, "issues/1", {"number": "1", "title": "first"})
    await _put(store, iid, "issues/2", {"number": "2", "title": "second"})
    await _pushed(database, iid, "1")
    await _pushed(database, iid, "2")
    await _put(store, iid, "issues/1", {"title": "first, edited"})
    await pulls.adopt(store, iid, "issues", "number", [
        ("1", {"number": 2, "title": "first"}),
        ("2", {"number": 3, "title": "second"}),
    ])  # fmt: skip
    held = await access.read(store, iid, ["issues/1", "issues/2", "issues/3"])
    assert held["issues/1"] is None
    assert held["issues/2"] == {"number": 2, "title": "first, edited"}
    assert held["issues/3"] == {"number": 3, "title": "second"}
    assert await _outbox(dsn, iid) == {"2": (["title"], False)}


async def test_a_move_onto_a_record_with_changes_waiting_keeps_them(database, dsn):
    iid = await bare_integration(database, dsn)
    store = DocStore(database)
    # an API that creates by a natural key answers a record the platform already holds
    await pulls.merge(store, iid, "contacts", "id", [{"id": "7", "email": "g@x.io", "name": "G"}],
                      [], None)  # fmt: skip
    await _put(store, iid, "contacts/7", {"name": "Grace"})  # waiting to be written
    await _put(store, iid, "contacts/new", {"id": "new", "email": "g@x.io"})
    await _pushed(database, iid, "new")
    await pulls.adopt(store, iid, "contacts", "id",
                      [("new", {"id": "7", "email": "g@x.io", "name": "G"})])  # fmt: skip
    held = await access.read(store, iid, ["contacts/new", "contacts/7"])
    assert held["contacts/new"] is None
    assert held["contacts/7"] == {"id": "7", "email": "g@x.io", "name": "Grace"}
    assert await _outbox(dsn, iid) == {"7": (["name"], False)}
