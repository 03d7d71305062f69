"""Sync documents: the shards of installed connectors (:mod:`layout`), durable in PostgreSQL.

A shard's document is its snapshot (``sync_shards.snapshot``, a full state update that covers
the log through ``log_through``) plus the updates appended since (``sync_updates``). Every
change is appended, and committed, before it is acknowledged or broadcast; appends to one shard
take a transaction-level advisory lock, so log ids grow in commit order per shard and any
replica can catch up by reading the ids above the last one it applied. Each append also keeps
the shard's row current (state vector, records). Past a threshold the log is folded into the
snapshot, under the same lock, and the folded rows deleted. A shard that was split is retired:
a session on it raises :class:`ShardSplit`, and its clients are told (:meth:`DocStore.retire`).

In this process each document is held in memory (a :class:`document.LiveDoc`) behind an asyncio
lock, within a memory budget (:mod:`held`): a dropped document is loaded again on demand.

A session catches the document up with the log, then reads or changes it. A change whose
append fails is dropped from memory with the document, which is loaded again from the
database next time, so memory never runs ahead of what is durable. A change refused once
applied (it broke the records layout or a schema) is undone by :meth:`DocStore.rollback`: the
document loaded again up to the log id it had reached, so its clients lose nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import asyncpg
import structlog
from prometheus_client import Counter, Gauge
from pycrdt import merge_updates

from connector_service.integrations.service import IntegrationNotFound
from connector_service.sync import shard_sql, splits
from connector_service.sync.access import Router
from connector_service.sync.document import LOAD, LiveDoc, new_live
from connector_service.sync.held import DEFAULT_MEMORY_BYTES, Held
from connector_service.sync.layout import MAX_BYTES, MAX_RECORDS, Shard, ShardSplit
from connector_service.sync.shard_sql import NOTIFY_CHANNEL

log = structlog.get_logger(component="connector_service.sync.store")

DOCUMENT_BYTES = Gauge(
    "seedos_sync_document_bytes",
    "Size of the largest sync document snapshot written lately.",
    multiprocess_mode="livemax",
)
SPLITS = Counter("seedos_sync_shard_splits_total", "Sync shards split for outgrowing their bound.")
Extra = Callable[[asyncpg.Connection, int], Awaitable[None]]


class Broadcaster(Protocol):
    """Who hears about committed changes (the WebSocket hub)."""

    def watching(self, shard_id: uuid.UUID) -> bool: ...

    def publish(self, shard_id: uuid.UUID, update: bytes, source: object | None = None) -> None: ...

    def invalidate(self, shard_id: uuid.UUID) -> None: ...

    def split(self, shard_id: uuid.UUID) -> None: ...


class DocStore:
    def __init__(
        self,
        db: Any,
        *,
        broadcaster: Broadcaster | None = None,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
        idle_seconds: float = 10.0,
        compact_rows: int = 500,
        compact_bytes: int = 32 * 1024 * 1024,
        max_records: int = MAX_RECORDS,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self._db = db
        self.broadcaster = broadcaster
        self.held = Held(memory_bytes=memory_bytes, idle_seconds=idle_seconds)
        self._locks: weakref.WeakValueDictionary[uuid.UUID, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self.compact_rows = compact_rows
        self.compact_bytes = compact_bytes
        self.max_records = max_records  # a shard holding more splits
        self.max_bytes = max_bytes
        self.fill = max(1, max_records // 2)  # what a new shard holds at most, on average
        self.router = Router(db)  # where records are: a cache of the installs' layouts

    @contextlib.asynccontextmanager
    async def session(
        self, shard_id: uuid.UUID, *, transient: bool = False
    ) -> AsyncIterator[LiveDoc]:
        """The shard's document, caught up with the log, for this caller alone in this process.
        ``transient``: used by a run passing through (evicted first, whatever its idle time).
        :class:`ShardSplit` if it was split, ``IntegrationNotFound`` if it is gone."""
        async with self._gate(shard_id):
            watched = self.broadcaster is not None and self.broadcaster.watching(shard_id)
            live = self.held.take(shard_id, pinned=watched)  # never evicted while watched
            try:
                await self._catch_up(live)
            except LookupError:  # uninstalled, perhaps through another replica
                self.forget(shard_id)
                # (a shard the caller named is checked to be the install's before: routes.py)
                raise IntegrationNotFound("the integration or its shard is gone") from None
            except ShardSplit:
                self.retire(shard_id)
                raise
            try:
                yield live
            finally:  # (a rollback during the session may have replaced ``live``)
                self.held.done(shard_id, transient=transient)

    @contextlib.asynccontextmanager
    async def sessions(
        self, shard_ids: list[uuid.UUID], *, transient: bool = False
    ) -> AsyncIterator[list[LiveDoc]]:
        """:meth:`session` on several shards at once (in the order of their ids, as every
        caller holding more than one takes them), caught up together."""
        ids = sorted(set(shard_ids))
        async with contextlib.AsyncExitStack() as stack:
            for shard_id in ids:
                await stack.enter_async_context(self._gate(shard_id))
            watched = self.broadcaster.watching if self.broadcaster is not None else None
            lives = [self.held.take(i, pinned=bool(watched and watched(i))) for i in ids]
            try:
                await self._catch_up_many(lives)
            except LookupError:
                for shard_id in ids:
                    self.forget(shard_id)
                raise IntegrationNotFound("the integration or its shard is gone") from None
            except ShardSplit as split:
                self.retire(split.shard_id)
                raise
            try:
                yield lives
            finally:
                for shard_id in ids:
                    self.held.done(shard_id, transient=transient)

    def _gate(self, shard_id: uuid.UUID) -> asyncio.Lock:
        """The lock of the shard's sessions in this process (kept while anyone holds it)."""
        gate = self._locks.get(shard_id)
        if gate is None:
            gate = self._locks[shard_id] = asyncio.Lock()
        return gate

    def sweep(self) -> None:
        """Drop what became idle since the last session, if over the budget."""
        self.held.fit()

    def forget_install(self, integration_id: uuid.UUID) -> None:
        """Uninstalled: every shard of it out of memory, its clients told."""
        self.router.forget(integration_id)
        for shard_id, live in self.held.items():
            if shard_id == integration_id or (
                live.shard is not None and live.shard.integration_id == integration_id
            ):
                self.forget(shard_id)

    def forget(self, shard_id: uuid.UUID) -> None:
        if self.held.drop(shard_id) and self.broadcaster is not None:
            # its clients were told about a copy that is gone: they resynchronize
            self.broadcaster.invalidate(shard_id)

    def retire(self, shard_id: uuid.UUID) -> None:
        """The shard was split (here or by another replica): out of memory, its clients told
        to follow its records to the shards that hold them now."""
        self.held.drop(shard_id)
        if self.broadcaster is not None:
            self.broadcaster.split(shard_id)

    def unpin(self, shard_id: uuid.UUID) -> None:
        """Its last live client left: the document is an ordinary cache entry again."""
        self.held.unpin(shard_id)

    def applied_through(self, shard_id: uuid.UUID) -> int | None:
        """The last log id this process applied to the document (None: not in memory)."""
        live = self.held.get(shard_id)
        return None if live is None else live.applied_through

    async def hold(self, conn: asyncpg.Connection, live: LiveDoc) -> None:
        """In the caller's transaction (holding the session): the shard's lock, and the
        document caught up under it (:class:`ShardSplit` if it was split meanwhile)."""
        await lock(conn, live.shard_id)
        await self._catch_up_on(conn, live)

    async def _catch_up(self, live: LiveDoc) -> None:
        async with self._db.connection() as conn:
            await self._catch_up_on(conn, live)

    async def rollback(self, live: LiveDoc) -> LiveDoc | None:
        """Undo what was applied to ``live`` and never appended (the caller holds the session
        and refused it): the document loaded again up to the log id ``live`` had reached,
        which takes its place. Later rows are left to the next catch-up, which tells the
        clients. If the log was folded past that id meanwhile, the state in between is gone:
        the document is forgotten instead and its clients resynchronize (None)."""
        fresh = new_live(live.shard_id)
        try:
            async with self._db.connection() as conn:
                await self._catch_up_on(conn, fresh, upto=live.applied_through)
        except BaseException:
            self.forget(live.shard_id)
            raise
        if fresh.applied_through != live.applied_through:
            self.forget(live.shard_id)
            return None
        self.held.replace(live, fresh)
        return fresh

    async def _catch_up_on(
        self, conn: asyncpg.Connection, live: LiveDoc, *, upto: int | None = None
    ) -> None:
        """Apply what the log holds beyond ``applied_through`` (appended by other replicas, or
        everything when the document was just loaded), in one round trip (the snapshot too,
        when another replica folded the log past that view), and tell the broadcaster.
        ``upto``: not beyond that log id. LookupError: no such shard; :class:`ShardSplit`: it
        was split."""
        rows = await conn.fetch(
            "SELECT s.log_through AS through, s.integration_id, s.stream, s.bits, s.slot,"
            ' s.retired_at IS NOT NULL AS retired, u.id, u."update"'
            " FROM sync_shards s LEFT JOIN sync_updates u"
            " ON u.shard_id = s.id AND u.id > GREATEST($2, s.log_through)"
            " AND u.id <= $3 WHERE s.id = $1 AND s.activated_at IS NOT NULL ORDER BY u.id",
            live.shard_id,
            live.applied_through,
            upto if upto is not None else 2**63 - 1,
        )
        await self._integrate(conn, live, rows)

    async def _catch_up_many(
        self, lives: list[LiveDoc], conn: asyncpg.Connection | None = None
    ) -> None:
        """:meth:`_catch_up_on` for several documents in two round trips (their log rows, then
        the snapshots of those that need one): a page of a pull opens many shards."""
        async with contextlib.AsyncExitStack() as stack:
            if conn is None:
                conn = await stack.enter_async_context(self._db.connection())
            rows = await conn.fetch(
                "SELECT c.id AS shard, s.log_through AS through, s.integration_id, s.stream,"
                ' s.bits, s.slot, s.retired_at IS NOT NULL AS retired, u.id, u."update"'
                " FROM unnest($1::uuid[], $2::bigint[]) AS c(id, applied)"
                " JOIN sync_shards s ON s.id = c.id AND s.activated_at IS NOT NULL"
                " LEFT JOIN sync_updates u"
                " ON u.shard_id = s.id AND u.id > GREATEST(c.applied, s.log_through)"
                " ORDER BY c.id, u.id",
                [live.shard_id for live in lives], [live.applied_through for live in lives],
            )  # fmt: skip
            found: dict[uuid.UUID, list[Any]] = {}
            for row in rows:
                found.setdefault(row["shard"], []).append(row)
            need = [live.shard_id for live in lives if live.shard_id in found
                    and (not live.loaded or found[live.shard_id][0]["through"]
                         > live.applied_through)]  # fmt: skip
            snapshots = {}
            if need:
                snapshots = {r["id"]: r["snapshot"] for r in await conn.fetch(
                    "SELECT id, snapshot FROM sync_shards WHERE id = ANY($1::uuid[])", need
                )}  # fmt: skip
            for live in lives:
                await self._integrate(conn, live, found.get(live.shard_id, []), snapshots)

    async def _integrate(
        self, conn: asyncpg.Connection, live: LiveDoc, rows: list[Any],
        snapshots: dict[uuid.UUID, bytes | None] | None = None,
    ) -> None:  # fmt: skip
        """Apply a catch-up's rows (and the snapshot, fetched unless in ``snapshots``)."""
        # a first load is nobody's news; later, only documents with clients here are
        tell = bool(live.loaded and self.broadcaster and self.broadcaster.watching(live.shard_id))
        before = None  # the state vector before a snapshot, when clients must hear the difference
        if not rows:
            raise LookupError(live.shard_id)
        head = rows[0]
        if head["retired"]:
            raise ShardSplit(live.shard_id)
        if live.shard is None:
            live.shard = Shard(live.shard_id, head["integration_id"], head["stream"],
                               head["bits"], head["slot"])  # fmt: skip
        first = not live.loaded
        live.loaded = True
        through = head["through"]
        if first or through > live.applied_through:  # new here, or folded past us: the snapshot
            if snapshots is not None and live.shard_id in snapshots:
                snapshot = snapshots[live.shard_id]
            else:
                snapshot = await conn.fetchval(
                    "SELECT snapshot FROM sync_shards WHERE id = $1", live.shard_id
                )
            if snapshot:
                before = live.doc.get_state() if tell else None
                with live.doc.transaction(origin=LOAD):
                    live.doc.apply_update(snapshot)
            live.forget_tail()
            live.applied_through, live.log_rows, live.log_bytes = through, 0, 0
            live.snapshot_bytes = len(snapshot or b"")
        updates = [row for row in rows if row["id"] is not None]
        for row in updates:
            live.load(row["update"])
        if live.deletions is None:  # loaded (or reloaded from a snapshot): start from all of them
            live.deletions = live.doc.get_update(live.doc.get_state())
        if updates:
            live.applied_through = updates[-1]["id"]
            live.log_rows += len(updates)
            live.log_bytes += sum(len(r["update"]) for r in updates)
        if not tell or self.broadcaster is None:
            return
        if before is not None:  # not the whole snapshot: what it and the rows added for us
            self.broadcaster.publish(live.shard_id, live.doc.get_update(before))
        elif updates:
            found = [row["update"] for row in updates]
            merged = found[0] if len(found) == 1 else merge_updates(*found)
            self.broadcaster.publish(live.shard_id, merged)

    async def append(
        self,
        live: LiveDoc,
        origin: str,
        update: bytes,
        extra: Extra | None = None,
        *,
        compact: bool = True,
        source: object | None = None,
    ) -> int | None:
        """Make a change durable: the update, and in the same transaction whatever ``extra``
        writes (a cursor, outbox rows). On failure the document is dropped from memory.
        ``compact=False`` leaves folding the log to :meth:`compact_install` (a sync run does
        that at its end rather than between two pages).

        Once committed, the change goes to the broadcaster (``source``: the connection it
        came from, spared the echo) and, through ``pg_notify`` of its id, to other replicas."""
        ids = await self.append_many([(live, update)], origin, extra, sources=[source])
        if compact:
            await self.tidy(live)
        return ids[0]

    async def tidy(self, live: LiveDoc) -> None:
        """After an append (the caller holds the session): split the shard if it outgrew its
        bound, else fold its log if that is due. Never raises: the change is committed
        already, and what this could not do is done the next time."""
        try:
            if self.oversized(live) and live.log_bytes > live.snapshot_bytes:
                await self.compact(live)  # the log is the bulk: its size says little
            if (
                self.oversized(live) and live.shard is not None
                and splits.helps(live.shard, list(live.records.keys()), fill=self.fill)
            ):  # fmt: skip
                await self.split(live)
            elif self.due(live):
                await self.compact(live)
        except ShardSplit:
            pass  # split meanwhile by another replica
        except Exception as exc:
            log.warning("sync_tidy_failed", shard_id=str(live.shard_id),
                        error=type(exc).__name__, detail=str(exc)[:300])  # fmt: skip

    async def append_many(
        self,
        changes: list[tuple[LiveDoc, bytes]],
        origin: str,
        extra: Extra | None = None,
        *,
        sources: list[object | None] | None = None,
    ) -> list[int | None]:
        """:meth:`append` for changes to several shards (the caller holds their sessions), in
        one transaction: a page of a pull is durable with its cursor whichever shards it
        touched. Their locks are taken in the order of their ids, as every caller does.
        ``sources``: for each change, the connection it came from (spared the echo)."""
        if extra is None and not any(update for _, update in changes):
            return [None] * len(changes)
        updates = [update for _, update in changes]

        async def given(_conn: asyncpg.Connection) -> list[bytes]:
            return updates

        return await self.append_computed([live for live, _ in changes], origin, given, extra,
                                          sources=sources)  # fmt: skip

    async def append_computed(
        self,
        lives: list[LiveDoc],
        origin: str,
        compute: Callable[[asyncpg.Connection], Awaitable[list[bytes]]],
        extra: Extra | None = None,
        *,
        sources: list[object | None] | None = None,
    ) -> list[int | None]:
        """Take the shards' locks (the caller holds their sessions), catch them up, then make
        the changes, ``compute(conn)`` (one update per document, in the order of ``lives``; it
        may read what it needs in the same transaction: nothing can be committed to these
        shards meanwhile), and append them. On failure every document is dropped from memory.
        """
        ids: dict[uuid.UUID, int] = {}
        updates: list[bytes] = []
        try:
            async with self._db.connection() as conn, conn.transaction():
                for live in sorted(lives, key=lambda live: live.shard_id):
                    await lock(conn, live.shard_id)
                # Another replica may have appended since these sessions caught up: take its
                # rows now, under the locks, or applied_through would jump over them below.
                if len(lives) == 1:
                    await self._catch_up_on(conn, lives[0])
                elif lives:
                    await self._catch_up_many(lives, conn)
                updates = await compute(conn)
                written = [(live, u) for live, u in zip(lives, updates, strict=True) if u]
                if written:
                    rows = await conn.fetch(
                        'INSERT INTO sync_updates (shard_id, origin, "update")'
                        " SELECT s, $1, u FROM unnest($2::uuid[], $3::bytea[]) AS c(s, u)"
                        " RETURNING shard_id, id",
                        origin, [live.shard_id for live, _ in written],
                        [update for _, update in written],
                    )  # fmt: skip
                    ids = {row["shard_id"]: row["id"] for row in rows}
                    await conn.execute(
                        "UPDATE sync_shards s SET state_vector = c.sv, records = c.n"
                        " FROM unnest($1::uuid[], $2::bytea[], $3::int[]) AS c(id, sv, n)"
                        " WHERE s.id = c.id",
                        [live.shard_id for live, _ in written],
                        [live.doc.get_state() for live, _ in written],
                        [len(live.records) for live, _ in written],
                    )
                    await conn.execute(
                        "SELECT pg_notify($1, n) FROM unnest($2::text[]) AS n", NOTIFY_CHANNEL,
                        [f"{shard_id}:{update_id}" for shard_id, update_id in ids.items()],
                    )  # fmt: skip
                if extra is not None:
                    await extra(conn, max(ids.values(), default=0))
        except BaseException:
            for live in lives:
                self.forget(live.shard_id)
            raise
        for n, (live, update) in enumerate(zip(lives, updates, strict=True)):
            update_id = ids.get(live.shard_id)
            if update_id is None or not update:
                continue
            live.applied_through = update_id
            live.log_rows += 1
            live.log_bytes += len(update)
            if self.broadcaster is not None:
                self.broadcaster.publish(live.shard_id, update, sources[n] if sources else None)
        return [
            ids.get(live.shard_id) if update else None
            for live, update in zip(lives, updates, strict=True)
        ]

    def due(self, live: LiveDoc) -> bool:
        return live.log_rows >= self.compact_rows or live.log_bytes >= self.compact_bytes

    async def compact_install(self, integration_id: uuid.UUID) -> None:
        """Fold the logs of the install's shards that are due (after a run, which appends
        without folding)."""
        async with self._db.connection() as conn:
            due = await conn.fetch(
                "SELECT u.shard_id FROM sync_updates u JOIN sync_shards s ON s.id = u.shard_id"
                " WHERE s.integration_id = $1 AND s.retired_at IS NULL GROUP BY u.shard_id"
                ' HAVING count(*) >= $2 OR sum(length(u."update")) >= $3',
                integration_id, self.compact_rows, self.compact_bytes,
            )  # fmt: skip
        for row in due:
            await self.tidy_shard(row["shard_id"])

    async def tidy_shard(self, shard_id: uuid.UUID) -> None:
        """:meth:`tidy` in a session of its own (gone or split already: nothing to do)."""
        with contextlib.suppress(ShardSplit, IntegrationNotFound):
            async with self.session(shard_id, transient=True) as live:
                await self.tidy(live)

    async def compact(self, live: LiveDoc) -> None:
        """Fold the log into the snapshot. The caller holds the session."""
        full = live.doc.get_update()
        through = live.applied_through
        async with self._db.connection() as conn, conn.transaction():
            await lock(conn, live.shard_id)
            newer = await conn.fetchval(
                "SELECT max(id) FROM sync_updates WHERE shard_id = $1 AND id > $2",
                live.shard_id,
                through,
            )
            if newer is not None:
                return  # another replica appended meanwhile; the next compaction catches it
            await conn.execute(
                "UPDATE sync_shards SET snapshot = $2, log_through = $3, bytes = $4,"
                " records = $5, state_vector = $6 WHERE id = $1 AND retired_at IS NULL",
                live.shard_id, full, through, len(full), len(live.records),
                live.doc.get_state(),
            )  # fmt: skip
            await conn.execute(
                "DELETE FROM sync_updates WHERE shard_id = $1 AND id <= $2",
                live.shard_id,
                through,
            )
        live.log_rows, live.log_bytes, live.snapshot_bytes = 0, 0, len(full)
        DOCUMENT_BYTES.set(len(full))
        log.info("sync_compacted", shard_id=str(live.shard_id), bytes=len(full),
                 through=through)  # fmt: skip

    # ------------------------------------------------------------------ splits

    def oversized(self, live: LiveDoc) -> bool:
        return splits.oversized(len(live.records), live.snapshot_bytes + live.log_bytes,
                                max_records=self.max_records, max_bytes=self.max_bytes)  # fmt: skip

    async def split(self, live: LiveDoc) -> list[Shard]:
        """Replace the shard with the shards of more bits that take its records
        (:mod:`splits`), under its lock, from its complete state. The caller holds the session;
        the shard is retired (its clients told) once committed."""
        async with self._db.connection() as conn, conn.transaction():
            await lock(conn, live.shard_id)
            await self._catch_up_on(conn, live)
            assert live.shard is not None
            made = await shard_sql.replace(
                conn, live.shard.integration_id, [live.shard_id],
                splits.children(live.shard, live.records, fill=self.fill),
            )  # fmt: skip
        self.retire(live.shard_id)
        SPLITS.inc()
        log.info("sync_shard_split", shard_id=str(live.shard_id), records=len(live.records),
                 into=len(made))  # fmt: skip
        return made


async def lock(conn: asyncpg.Connection, shard_id: uuid.UUID) -> None:
    """The transaction-level lock that orders appends to one shard across replicas (and its
    compaction, and its split)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"sync:{shard_id}")
