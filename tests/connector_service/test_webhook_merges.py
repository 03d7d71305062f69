"""The records deliveries carry, merged a batch at a time (connector_service/webhooks/merges.py):
concurrent deliveries share a merge and each is recorded as taken in its transaction; changes to
one record apply in the order they arrived; a merge that fails records none of its deliveries
and applies none of its records, and each of them is told."""

from __future__ import annotations

import asyncio
import uuid

from connector_service.sync import access
from connector_service.sync.store import DocStore
from connector_service.webhooks.merges import Merges
from tests.connector_service.rig import bare_integration, fetch


async def _taken(dsn: str, iid: uuid.UUID) -> dict[str, str]:
    rows = await fetch(dsn, "SELECT delivery_id, event_type FROM webhook_deliveries"
                            " WHERE integration_id = $1", iid)  # fmt: skip
    return {r["delivery_id"]: r["event_type"] for r in rows}


async def test_concurrent_deliveries_share_a_merge_and_each_is_recorded(database, dsn):
    iid = await bare_integration(database, dsn)
    merges = Merges(DocStore(database, max_records=16))  # several shards by the end
    await merges.apply(iid, "customers", "id", key="cus_0", record={"id": "cus_0", "n": 0},
                       delivery="evt_0", event_type="customer.created")  # fmt: skip
    assert merges.merges == 1  # alone: merged at once
    await asyncio.gather(*(merges.apply(
        iid, "customers", "id", key=f"cus_{n}", record={"id": f"cus_{n}", "n": n},
        delivery=f"evt_{n}", event_type="customer.created") for n in range(1, 61)))  # fmt: skip
    assert merges.merges <= 3, merges.merges  # 60 deliveries, a merge or two
    held = await access.read(merges.store, iid, [f"customers/cus_{n}" for n in range(61)])
    assert all(held[f"customers/cus_{n}"] == {"id": f"cus_{n}", "n": n} for n in range(61))
    assert await _taken(dsn, iid) == {f"evt_{n}": "customer.created" for n in range(61)}


async def test_changes_to_one_record_apply_in_the_order_they_arrived(database, dsn):
    iid = await bare_integration(database, dsn)
    merges = Merges(DocStore(database))

    def send(n: int, record: dict | None, kind: str):
        return merges.apply(iid, "customers", "id", key="cus_a", record=record,
                            delivery=f"evt_{n}", event_type=kind)  # fmt: skip

    await send(0, {"id": "cus_a", "name": "Ada"}, "customer.created")
    await asyncio.gather(
        send(1, {"id": "cus_a", "name": "Ada L."}, "customer.updated"),
        send(2, None, "customer.deleted"),
        send(3, {"id": "cus_a", "email": "ada@example.com"}, "customer.created"),
    )
    held = await access.read(merges.store, iid, ["customers/cus_a"])
    # deleted, then made again: the name of before the deletion is gone
    assert held["customers/cus_a"] == {"id": "cus_a", "email": "ada@example.com"}
    assert set(await _taken(dsn, iid)) == {"evt_0", "evt_1", "evt_2", "evt_3"}


async def test_a_failed_merge_applies_and_records_nothing(database, dsn):
    iid = await bare_integration(database, dsn)
    merges = Merges(DocStore(database))
    await merges.apply(iid, "customers", "id", key="cus_0", record={"id": "cus_0"},
                       delivery="evt_0", event_type="customer.created")  # fmt: skip
    # a delivery id the table refuses (over 200 characters) fails the batch's transaction
    results = await asyncio.gather(
        merges.apply(iid, "customers", "id", key="cus_1", record={"id": "cus_1"},
                     delivery="evt_1", event_type="customer.created"),
        merges.apply(iid, "customers", "id", key="cus_2", record={"id": "cus_2"},
                     delivery="x" * 201, event_type="customer.created"),
        return_exceptions=True,
    )  # fmt: skip
    assert all(isinstance(r, Exception) for r in results), results
    held = await access.read(merges.store, iid, ["customers/cus_1", "customers/cus_2"])
    assert held == {"customers/cus_1": None, "customers/cus_2": None}
    assert set(await _taken(dsn, iid)) == {"evt_0"}  # the provider will send them again
    # and the next delivery merges as before
    await merges.apply(iid, "customers", "id", key="cus_1", record={"id": "cus_1"},
                       delivery="evt_1", event_type="customer.created")  # fmt: skip
    assert (await access.read(merges.store, iid, ["customers/cus_1"]))["customers/cus_1"]


async def test_the_logs_of_an_install_that_only_hears_webhooks_are_folded(database, dsn):
    """No sync run folds them: a drain does, once the logs are due (a fold at most every
    fold_every seconds per install)."""
    iid = await bare_integration(database, dsn)
    merges = Merges(DocStore(database, compact_rows=5), fold_every=0)
    for n in range(12):  # one at a time: a merge (and a log row) each
        await merges.apply(iid, "customers", "id", key="cus_0", record={"id": "cus_0", "n": n},
                           delivery=f"evt_{n}", event_type="customer.updated")  # fmt: skip
        await asyncio.gather(*merges._folding)
    rows = await fetch(dsn, "SELECT count(*) AS n FROM sync_updates u JOIN sync_shards s"
                            " ON s.id = u.shard_id WHERE s.integration_id = $1", iid)  # fmt: skip
    assert rows[0]["n"] < 5, rows  # folded as they came due, not 12 rows
    held = await access.read(merges.store, iid, ["customers/cus_0"])
    assert held["customers/cus_0"] == {"id": "cus_0", "n": 11}
