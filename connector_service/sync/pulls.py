"""Merging pulled records into the shards that hold them.

A page's records go to their shards (:mod:`layout`), a bounded number of shards at a time, each
group merged in its shard's document and the group's updates appended in one transaction; the
page's cursor is saved with its last group, so a cursor never runs ahead of a durable merge (a
group merged again after a crash changes nothing). A shard split meanwhile is noticed by its
session, and the records are placed again. Shards the merge makes outgrow their bound are split
afterwards.

The merge rule: a field with a platform change still waiting in the outbox keeps the platform's
value (it is about to be written to the external system); every other field takes the external
value, and a record reported deleted is deleted unless the platform changed it meanwhile. The
outbox is read in the transaction that appends the merge, under the shards' locks, so no
platform change can be committed between the two.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from pycrdt import Map

from connector_service.sync import records as rec
from connector_service.sync import repository
from connector_service.sync.document import DELETED, EXTERNAL
from connector_service.sync.layout import key_hash
from connector_service.sync.store import DocStore, ShardSplit

SHARDS_AT_ONCE = 64  # shards one transaction holds: what a page costs in memory is bounded
ROUTE_ATTEMPTS = 5
SaveCursor = Callable[[asyncpg.Connection, int], Awaitable[None]]


def cursor_saver(integration_id: uuid.UUID, stream: str, cursor: str | None) -> SaveCursor:
    """The ``save`` of :func:`merge` that saves the stream's cursor."""

    async def save(conn: asyncpg.Connection, _update_id: int) -> None:
        await repository.save_cursor(conn, integration_id, stream, cursor)

    return save


async def merge(
    store: DocStore, integration_id: uuid.UUID, stream: str, pk: str,
    records: list[Any], deleted: list[str], save: SaveCursor | None,
) -> None:  # fmt: skip
    """``records`` and ``deleted`` (primary keys) of ``stream`` into their shards, durable
    (with ``save``, the cursor, in the last transaction)."""
    by_key: dict[str, Any] = {}
    for record in records:
        if isinstance(record, dict) and record.get(pk) not in (None, ""):
            by_key[rec.key(stream, record[pk])] = record
    gone = [rec.key(stream, pk_value) for pk_value in deleted]
    keys = list(dict.fromkeys([*by_key, *gone]))
    hashes = {k: key_hash(k) for k in keys}
    oversized: set[uuid.UUID] = set()
    for attempt in range(ROUTE_ATTEMPTS):
        fresh = attempt > 0
        layout = await (store.router.holding(integration_id, stream, fresh=fresh) if keys
                        else store.router.layout(integration_id, fresh=fresh))  # fmt: skip
        groups: dict[uuid.UUID, list[str]] = {}
        for k in keys:
            shard = layout.route(k, hashes[k])
            if shard is None:
                raise RuntimeError(f"no shard holds {k!r}")  # never: the stream's shards cover it
            groups.setdefault(shard.id, []).append(k)
        try:
            keys = await _merge_groups(store, integration_id, groups, stream, by_key, set(gone),
                                       save, oversized)  # fmt: skip
        except ShardSplit:
            if attempt == ROUTE_ATTEMPTS - 1:
                raise
            continue
        if not keys:
            break
    else:  # never silently: the next page would save a cursor past these records
        raise ShardSplit(integration_id)
    for shard_id in oversized:
        await store.tidy_shard(shard_id)


async def _merge_groups(
    store: DocStore, integration_id: uuid.UUID, groups: dict[uuid.UUID, list[str]],
    stream: str, by_key: dict[str, Any], gone: set[str], save: SaveCursor | None,
    oversized: set[uuid.UUID],
) -> list[str]:  # fmt: skip
    """Merge each group in its shard, :data:`SHARDS_AT_ONCE` shards a transaction. Returns the
    keys left to place again when a shard turned out split (raises ShardSplit if none were
    merged yet, so that the caller reads the layout again)."""
    ids = sorted(groups)
    batches = [ids[i : i + SHARDS_AT_ONCE] for i in range(0, len(ids), SHARDS_AT_ONCE)] or [[]]
    for n, batch in enumerate(batches):
        last = n == len(batches) - 1
        try:
            async with store.sessions(batch, transient=True) as lives:

                async def compute(
                    conn: asyncpg.Connection, lives: list[Any] = lives
                ) -> list[bytes]:
                    # the platform's changes waiting in the outbox, read under the shards'
                    # locks: none can be committed to them between this and the merge
                    pending = await repository.pending_fields(conn, integration_id, stream)
                    return [live.transact(EXTERNAL, functools.partial(
                        _merge, keys=groups[live.shard_id], stream=stream, by_key=by_key,
                        gone=gone, pending=pending))[0] for live in lives]  # fmt: skip

                await store.append_computed(lives, EXTERNAL, compute, save if last else None)
                oversized.update(live.shard_id for live in lives if store.oversized(live))
        except ShardSplit:
            if n == 0:
                raise
            return [k for i in ids[n * SHARDS_AT_ONCE :] for k in groups[i]]
    return []


def _merge(
    records: Map, *, keys: list[str], stream: str, by_key: dict[str, Any], gone: set[str],
    pending: dict[str, set[str] | None],
) -> None:  # fmt: skip
    prefix = len(stream) + 1
    for k in keys:
        held = pending.get(k[prefix:], set())
        record = by_key.get(k)
        if k in gone:  # reported deleted (in the same page as a change: the deletion wins)
            if k in records and held == set():
                del records[k]
        elif record is not None:
            if held is DELETED:
                continue  # deleted on the platform, about to be deleted there too
            incoming = rec.to_fields(record)
            current = records.get(k) if k in records else None  # `in` is the cheap test
            if not isinstance(current, Map):
                rec.insert(records, k, incoming)
                continue
            for field, value in rec.changed(current.to_py(), incoming).items():
                if field not in held:
                    current[field] = value


async def adopt(
    store: DocStore, integration_id: uuid.UUID, stream: str, pk: str,
    moves: list[tuple[str, dict[str, Any]]],
) -> None:  # fmt: skip
    """Records the platform created under keys it made up, which the external system created
    under keys of its own (``moves``: the platform's primary key, the record the system
    answered): each moves to the system's key, in one transaction with the outbox, so that the
    next pull finds it where it is instead of adding it a second time.

    A change the platform made to one since its write went out is still in the outbox: it
    follows the record (its fields keep the platform's values, and will be written under the
    new key); a deletion meanwhile deletes the record the system made."""
    pairs = [(rec.key(stream, old), rec.key(stream, record[pk]), old, str(record[pk]), record)
             for old, record in moves]  # fmt: skip
    keys = list(dict.fromkeys(k for o, n, *_ in pairs for k in (o, n)))
    for attempt in range(ROUTE_ATTEMPTS):
        layout = await store.router.holding(integration_id, stream, fresh=attempt > 0)
        shard_of: dict[str, uuid.UUID] = {}
        for k in keys:
            shard = layout.route(k, key_hash(k))
            if shard is None:
                raise RuntimeError(f"no shard holds {k!r}")  # never: the stream's shards cover it
            shard_of[k] = shard.id
        try:
            async with store.sessions(sorted(set(shard_of.values())), transient=True) as lives:

                async def compute(
                    conn: asyncpg.Connection, lives: list[Any] = lives,
                    shard_of: dict[str, uuid.UUID] = shard_of,
                ) -> list[bytes]:  # fmt: skip
                    pending = await repository.pending_fields(conn, integration_id, stream)
                    by_id = {live.shard_id: live for live in lives}
                    now = {o: by_id[shard_of[o]].get(o) for o, *_ in pairs}  # before any move
                    return [live.transact(EXTERNAL, functools.partial(
                        _move, shard_id=live.shard_id, shard_of=shard_of, pk=pk, pairs=pairs,
                        now=now, pending=pending))[0] for live in lives]  # fmt: skip

                async def follow(conn: asyncpg.Connection, _update_id: int) -> None:
                    moved = [(old, new) for _o, _n, old, new, _r in pairs]
                    await repository.rekey(conn, integration_id, stream, moved)

                await store.append_computed(lives, EXTERNAL, compute, follow)
        except ShardSplit:
            if attempt == ROUTE_ATTEMPTS - 1:
                raise
            continue
        return


def _move(
    records: Map, *, shard_id: uuid.UUID, shard_of: dict[str, uuid.UUID], pk: str,
    pairs: list[tuple[str, str, str, str, dict[str, Any]]],
    now: dict[str, dict[str, Any] | None], pending: dict[str, set[str] | None],
) -> None:  # fmt: skip
    # every old key goes first: a new key may be another move's old one (1 -> 2, 2 -> 3)
    for old_key, *_ in pairs:
        if shard_of[old_key] == shard_id and old_key in records:
            del records[old_key]
    for old_key, new_key, old, new, record in pairs:
        if shard_of[new_key] != shard_id:
            continue
        waiting = pending.get(old, set())
        if waiting is None:
            continue  # deleted on the platform meanwhile: the outbox deletes it there too
        incoming = rec.to_fields(record)
        held = now.get(old_key) or {}
        # the platform's values of fields pending, but never its key: the record is now new
        incoming.update({f: held[f] for f in waiting if f in held and f != pk})
        current = records.get(new_key) if new_key in records else None
        if not isinstance(current, Map):
            rec.insert(records, new_key, incoming)
            continue
        # a record the platform holds there already: its own changes waiting keep their values
        kept = pending.get(new) or set()
        for field, value in rec.changed(current.to_py(), incoming).items():
            if field not in kept or field in waiting:
                current[field] = value
