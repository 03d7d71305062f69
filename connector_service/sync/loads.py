"""First loads: a stream's first pull, built straight into as many shards as it needs.

Merging a large first pull page by page into documents would split shards again and again and
scatter every page over all of them. A first pull (no cursor yet, or after a resync, while the
stream holds at most :data:`layout.MAX_RECORDS` records) goes another way:

1. The first pages are kept in memory; a stream that ends within a shard's bound of records
   (:data:`layout.MAX_RECORDS`) is merged as any page is (:mod:`pulls`), cursor and all.
2. Beyond that, every page is *staged*: each record encoded as Yjs content (:mod:`encode`) and
   written, by a bucket of its hash, to ``sync_load_chunks`` in one transaction with the cursor
   after the page (``sync_loads``, which ``GET sync/status`` shows as the load's progress). A
   process that dies goes on from there; the records are not visible until the end.
3. At the end the stream's shards are built, bucket by bucket: a record reported twice counts
   once (the later), one reported deleted not at all; each shard is one new document, written
   but not yet live.
4. Then, in one transaction under the locks of the shards that held the stream until now (the
   root, or the stream's shards): the records those held (new ones made on the platform during
   the load, or the stream's records before a resync) are merged into the new shards by the
   rule of every pull (platform changes waiting in the outbox win), the root (if still live)
   splits into the other streams' shards, the new shards go live, the old ones are retired and
   the cursor is saved. Clients of the retired shards are told to move (:mod:`hub`).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import structlog
from pycrdt import Doc, Map

from connector_service.sync import encode, pulls, repository, shard_sql, splits
from connector_service.sync import records as rec
from connector_service.sync.document import DELETED, LOAD
from connector_service.sync.layout import HASH_BITS, Shard, bits_for, key_hash
from connector_service.sync.store import DocStore, ShardSplit

log = structlog.get_logger(component="connector_service.sync.loads")

BUCKET_BITS = 6  # the stage's buckets: 64, read one at a time when the shards are built
WRITE_BATCH_BYTES = 16 * 1024 * 1024
YIELD_EVERY = 100  # records encoded (or shards built) between two turns of the event loop
ACTIVATE_ATTEMPTS = 5


async def first_pull(
    conn: Any, integration_id: uuid.UUID, stream: str, cursor: str | None, *, small: int
) -> Any:
    """The load in progress for the stream, or True when its next pull is a first load (no
    cursor, and at most ``small`` records held), else None."""
    found = await shard_sql.load_progress(conn, integration_id, stream)
    if found:
        return found[0]
    if cursor is not None:
        return None
    held = await shard_sql.stream_records(conn, integration_id, stream)
    return True if held is None or held <= small else None


class FirstLoad:
    def __init__(
        self, store: DocStore, db: Any, integration_id: uuid.UUID, stream: str, pk: str,
        progress: Any,
    ) -> None:  # fmt: skip
        self.store, self.db = store, db
        self.integration_id, self.stream, self.pk = integration_id, stream, pk
        staged = progress if progress is not True else None
        self.load = encode.Load(staged["client"]) if staged else None
        self.page = staged["pages"] if staged else 0
        self.staged = staged["records"] if staged else 0
        self.deleted: set[str] = set()  # keys the load last reported deleted
        self.cursor: str | None = staged["cursor"] if staged else None  # after the last page

    async def run(self, pages: AsyncIterator[Mapping[str, Any]], counts: dict[str, int]) -> None:
        held: list[tuple[list[Any], list[str], str | None]] = []  # pages not staged yet
        count = 0
        stager = _Stager(self.db, self.integration_id, self.stream)
        try:
            async for page in pages:
                records = page.get("records") or []
                deleted = [str(d) for d in page.get("deleted") or []]
                counts["pulled"] += len(records)
                counts["deleted"] += len(deleted)
                self.cursor = page.get("next_cursor")
                held.append((records, deleted, self.cursor))
                count += len(records)
                if self.load is None:
                    if count <= self.store.max_records:
                        continue
                    self.load = encode.Load()
                    async with self.db.connection() as conn:
                        await shard_sql.start_load(conn, self.integration_id, self.stream,
                                                   self.load.client)  # fmt: skip
                # in order, each page durable with the cursor after it; encoded here while the
                # stager writes the previous page and the connector reads the next one
                for records, deleted, cursor in held:
                    await stager.put(self.page, await self._encode(records, deleted), cursor)
                    self.page += 1
                held = []
            await stager.close()
        finally:
            await stager.abort()
        if self.load is None:  # a small stream: merged like any pages, one after the other
            for records, deleted, cursor in held:
                save = pulls.cursor_saver(self.integration_id, self.stream, cursor)
                await pulls.merge(self.store, self.integration_id, self.stream, self.pk,
                                  records, deleted, save)  # fmt: skip
            return
        await self._build()
        await self._activate(self.cursor)

    # ------------------------------------------------------------------ stage

    async def _encode(self, records: list[Any], deleted: list[str]) -> tuple[dict[int, bytes], int]:
        """A page's records as staged entries, by bucket, and how many. It yields to the event
        loop every :data:`YIELD_EVERY` records: the read of the next page, started just
        before, must reach the connector now, not once this page is encoded (which would make
        the reads and the encoding take turns instead of overlapping)."""
        assert self.load is not None
        shift = HASH_BITS - BUCKET_BITS
        buckets: dict[int, list[bytes]] = {}
        entry, prefix, pk = self.load.entry, f"{self.stream}/", self.pk
        count = 0
        for n, record in enumerate(records):
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            if not isinstance(record, dict) or record.get(pk) in (None, ""):
                continue
            k = prefix + str(record[pk])
            h = key_hash(k)
            found = buckets.get(h >> shift)
            if found is None:
                found = buckets[h >> shift] = []
            found.append(h.to_bytes(4, "big") + entry(k, record))
            count += 1
        for pk_value in deleted:
            k = prefix + pk_value
            h = key_hash(k)
            buckets.setdefault(h >> shift, []).append(h.to_bytes(4, "big") + self.load.deletion(k))
        self.staged += count
        return {b: b"".join(found) for b, found in buckets.items()}, count

    # ------------------------------------------------------------------ build

    async def _build(self) -> None:
        """Every shard of the stream from the stage, written but not live."""
        assert self.load is not None
        bits = bits_for(self.staged, self.store.fill)
        shift = HASH_BITS - bits
        slots: dict[int, dict[bytes, encode.Entry]] = {}
        queue: asyncio.Queue[list[splits.Child] | None] = asyncio.Queue(maxsize=2)
        writer = asyncio.create_task(self._write(queue))
        batch: list[splits.Child] = []
        size, next_slot = 0, 0
        self.deleted = set()
        try:
            async with self.db.connection() as conn:
                await shard_sql.drop_unactivated(conn, self.integration_id, self.stream)
            buckets = 1 << BUCKET_BITS
            ahead = asyncio.create_task(self._chunks(0))
            for bucket in range(buckets):
                chunks = await ahead  # the next bucket is read while this one is built
                ahead = asyncio.create_task(
                    self._chunks(bucket + 1 if bucket + 1 < buckets else -1)
                )
                for chunk in chunks:  # page by page: a later report of a record wins
                    for hashed, found in encode.hashed_entries(chunk):
                        slots.setdefault(hashed >> shift, {})[found[0]] = found
                end = (bucket + 1) << (HASH_BITS - BUCKET_BITS)  # the next bucket's first hash
                while next_slot < 1 << bits and (next_slot + 1) << shift <= end:
                    # every place is a shard, empty or not: together they cover the stream
                    await asyncio.sleep(0)  # the next bucket's read and the writes go on
                    child = self._child(bits, next_slot, slots.pop(next_slot, {}))
                    next_slot += 1
                    batch.append(child)
                    size += len(child.update)
                    if size >= WRITE_BATCH_BYTES:
                        await queue.put(batch)
                        batch, size = [], 0
            await ahead
            await queue.put(batch)
            await queue.put(None)
            await writer
        finally:
            with contextlib.suppress(Exception):
                await ahead  # a read: let it end rather than cancel it mid-acquire
            await _stop(writer, queue)

    async def _chunks(self, bucket: int) -> list[bytes]:
        if bucket < 0:
            return []
        async with self.db.connection() as conn:
            return await shard_sql.bucket_chunks(conn, self.integration_id, self.stream, bucket)

    def _child(self, bits: int, slot: int, found: dict[bytes, encode.Entry]) -> splits.Child:
        assert self.load is not None
        kept = []
        for e in found.values():
            if e[3] & encode.DELETED:
                self.deleted.add(encode.key_of(e[0]))
            else:
                kept.append(e)
        update, state_vector = encode.shard_update(self.load, kept)
        return splits.Child(self.stream, bits, slot, update, state_vector, len(kept))

    async def _write(self, queue: asyncio.Queue[list[splits.Child] | None]) -> None:
        while (batch := await queue.get()) is not None:
            if batch:
                async with self.db.connection() as conn, conn.transaction():
                    await shard_sql.add_unactivated(conn, self.integration_id, batch)

    # ------------------------------------------------------------------ activate

    async def _activate(self, cursor: str | None) -> None:
        for attempt in range(ACTIVATE_ATTEMPTS):
            try:
                await self._activate_once(cursor)
                return
            except ShardSplit:  # what held the stream split meanwhile: read it again
                if attempt == ACTIVATE_ATTEMPTS - 1:
                    raise

    async def _activate_once(self, cursor: str | None) -> None:
        iid, stream = self.integration_id, self.stream
        async with self.db.connection() as conn:
            layout = await shard_sql.layout(conn, iid)
        old = [layout.root] if layout.root is not None else layout.of_stream(stream)
        async with contextlib.AsyncExitStack() as stack:
            lives = [await stack.enter_async_context(self.store.session(s.id))
                     for s in sorted(old, key=lambda s: s.id)]  # fmt: skip
            async with self.db.connection() as conn, conn.transaction():
                await shard_sql.stream_lock(conn, iid, stream)
                for live in lives:
                    await self.store.hold(conn, live)
                now = await shard_sql.layout(conn, iid)
                if {s.id for s in ([now.root] if now.root else now.of_stream(stream))} != {
                    s.id for s in old
                }:
                    raise ShardSplit(old[0].id if old else iid)
                carried: dict[str, dict[str, Any] | None] = {
                    k: v.to_py() for live in lives for k, v in live.records.items()
                    if k.startswith(f"{stream}/") and isinstance(v, Map)
                }  # fmt: skip
                pending = await repository.pending_fields(conn, iid, stream)
                for pk, fields in pending.items():  # deleted here, not pushed yet: stay deleted
                    if fields is DELETED:
                        carried.setdefault(rec.key(stream, pk), None)
                if carried:
                    await self._carry(conn, carried, pending)
                made: list[splits.Child] = []
                for live in lives:
                    if live.shard is not None and live.shard.is_root:
                        made += splits.children(live.shard, live.records, skip_stream=stream,
                                                fill=self.store.fill)  # fmt: skip
                await shard_sql.replace(conn, iid, [live.shard_id for live in lives], made)
                await shard_sql.activate(conn, iid, stream)
                await repository.save_cursor(conn, iid, stream, cursor)
            for live in lives:
                self.store.retire(live.shard_id)
        self.store.router.forget(iid)
        log.info("sync_first_load_done", integration_id=str(iid), stream=stream,
                 records=self.staged, carried=len(carried))  # fmt: skip

    async def _carry(
        self, conn: Any, carried: dict[str, dict[str, Any] | None],
        pending: dict[str, set[str] | None],
    ) -> None:  # fmt: skip
        """The stream's records held until now, into the new shards (the pull's rule: the
        external value, but for fields whose platform change waits in the outbox, and none for
        records deleted on the platform, not pushed yet: None in ``carried``)."""
        built = await shard_sql.unactivated(conn, self.integration_id, self.stream)
        by_slot = {(s.bits, s.slot): s for s in built}
        bits = built[0].bits if built else 0
        groups: dict[Shard, list[str]] = {}
        for k in carried:
            shard = by_slot.get((bits, key_hash(k) >> (HASH_BITS - bits)))
            if shard is not None:
                groups.setdefault(shard, []).append(k)
        stored = await shard_sql.snapshots(conn, [s.id for s in groups])
        prefix = len(self.stream) + 1
        for shard, keys in groups.items():
            doc = Doc()
            records = doc.get(rec.ROOT, type=Map)
            doc.apply_update(stored[shard.id])
            with doc.transaction(origin=LOAD):
                for k in keys:
                    held = pending.get(k[prefix:], set())
                    if k in self.deleted and held == set() and k not in records:
                        continue  # deleted there, unchanged here: as a pull deletes it
                    _carry_one(records, k, carried[k], held)
            await shard_sql.rewrite(conn, shard.id, snapshot=doc.get_update(),
                                    state_vector=doc.get_state(), records=len(records))  # fmt: skip


def _carry_one(records: Map, k: str, mine: dict[str, Any] | None, held: set[str] | None) -> None:
    """A record held until now (``mine``) against what the load brought for its key."""
    theirs = records.get(k) if k in records else None
    if held is DELETED or mine is None:  # deleted on the platform: stays deleted
        if theirs is not None:
            del records[k]
        return
    if not isinstance(theirs, Map):
        records[k] = Map(mine)  # not in the load, or deleted there but changed here meanwhile
        return
    current = theirs.to_py()
    for field, value in mine.items():
        if field in held or field not in current:
            theirs[field] = value


class _Stager:
    """Writes a first load's pages to the stage in order, one transaction each (the page's
    chunks and the cursor after it), in a task of its own: the next page is encoded meanwhile.
    At most two pages wait for it."""

    def __init__(self, db: Any, integration_id: uuid.UUID, stream: str) -> None:
        self._db, self._iid, self._stream = db, integration_id, stream
        self._queue: asyncio.Queue[tuple[int, tuple[dict[int, bytes], int], str | None] | None]
        self._queue = asyncio.Queue(maxsize=2)
        self._task: asyncio.Task[None] | None = None

    async def put(
        self, page: int, encoded: tuple[dict[int, bytes], int], cursor: str | None
    ) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._write())
        elif self._task.done():
            self._task.result()  # it failed: say why (else it ended early, which cannot be)
        await self._queue.put((page, encoded, cursor))

    async def close(self) -> None:
        """Every page written (raises what writing one raised)."""
        if self._task is not None:
            await self._queue.put(None)
            await self._task

    async def abort(self) -> None:
        """Stop after the page being written, dropping the pages not written yet."""
        if self._task is not None:
            await _stop(self._task, self._queue)

    async def _write(self) -> None:
        while (item := await self._queue.get()) is not None:
            page, (chunks, count), cursor = item
            async with self._db.connection() as conn:
                await shard_sql.stage(conn, self._iid, self._stream, page=page, chunks=chunks,
                                      cursor=cursor, records=count)  # fmt: skip


async def _stop(task: asyncio.Task[None], queue: asyncio.Queue[Any]) -> None:
    """Stop a writer ``task`` that reads ``queue`` until None: what waits is dropped and a
    None put in its place. A sentinel, not a cancellation: one that lands while the writer
    acquires a connection could be lost (``Database.acquire``), and it would wait for ever."""
    if task.done():
        return
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(None)
    with contextlib.suppress(Exception):
        await task
