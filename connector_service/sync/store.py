"""Sync documents: one pycrdt document per installed connector, durable in PostgreSQL.

A document is its snapshot (``integration_connectors.sync_version``, a full state update that
covers the log through ``sync_log_through``) plus the updates appended since (``sync_updates``).
Every change is appended, and committed, before it is acknowledged or broadcast; appends to one
document take a transaction-level advisory lock, so log ids grow in commit order per document
and any replica can catch up by reading the ids above the last one it applied. Past a threshold
the log is folded into the snapshot, under the same lock, and the folded rows deleted.

In this process each document is held in memory (a :class:`document.LiveDoc`) behind an asyncio
lock, within a memory budget (``SEEDOS_SYNC_MEMORY_MB``): after each session, the least recently
used documents without clients here are dropped until the estimate of what all take
(:meth:`LiveDoc.memory_estimate`) fits; a dropped document is loaded again on demand. Only
documents idle for ``idle_seconds`` are dropped (two large ones in use at once must not evict
each other page after page), and :meth:`DocStore.sweep` (every few seconds) drops those that
became idle since. Documents with live clients are never dropped, and count against the
budget.

A session catches the document up with the log, then reads or changes it. A change whose
append fails is dropped from memory with the document, which is loaded again from the
database next time, so memory never runs ahead of what is durable. A change refused once
applied (it broke the records layout or a schema) is undone by :meth:`DocStore.rollback`: the
document loaded again up to the log id it had reached, so its clients lose nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import asyncpg
import structlog
from prometheus_client import Counter, Gauge
from pycrdt import merge_updates

from connector_service.integrations.service import IntegrationNotFound
from connector_service.sync.document import LOAD, LiveDoc, new_live

log = structlog.get_logger(component="connector_service.sync.store")

DOCUMENT_BYTES = Gauge(
    "seedos_sync_document_bytes", "Size of the largest sync document snapshot written lately."
)
MEMORY = Gauge(
    "seedos_sync_memory_bytes", "Estimated memory of the sync documents held in this process."
)
EVICTED = Counter(
    "seedos_sync_documents_evicted_total", "Sync documents dropped from memory for the budget."
)
DEFAULT_MEMORY_BYTES = 512 * 1024 * 1024
Extra = Callable[[asyncpg.Connection, int], Awaitable[None]]
NOTIFY_CHANNEL = "seedos_sync"  # payload "<integration id>:<log id>": ids only, never bytes


class Broadcaster(Protocol):
    """Who hears about committed changes (the WebSocket hub)."""

    def watching(self, integration_id: uuid.UUID) -> bool: ...

    def publish(
        self, integration_id: uuid.UUID, update: bytes, source: object | None = None
    ) -> None: ...

    def invalidate(self, integration_id: uuid.UUID) -> None: ...


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
    ) -> None:
        self._db = db
        self.broadcaster = broadcaster
        self.memory_bytes = memory_bytes
        self.idle_seconds = idle_seconds
        self._pinned: dict[uuid.UUID, LiveDoc] = {}  # documents with live clients here
        # the others, least recently used first (a dict keeps its order; a use moves to the end)
        self._docs: dict[uuid.UUID, LiveDoc] = {}
        # each held document's memory estimate when its last session ended, and their sum: a
        # session's end measures only its own document, not every one held
        self._sizes: dict[uuid.UUID, int] = {}
        self._total = 0
        self._locks: weakref.WeakValueDictionary[uuid.UUID, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self.compact_rows = compact_rows
        self.compact_bytes = compact_bytes

    @contextlib.asynccontextmanager
    async def session(self, integration_id: uuid.UUID) -> AsyncIterator[LiveDoc]:
        """The document, caught up with the log, for this caller alone in this process."""
        gate = self._locks.get(integration_id)
        if gate is None:
            gate = self._locks[integration_id] = asyncio.Lock()
        async with gate:
            live = self._pinned.get(integration_id) or self._docs.pop(integration_id, None)
            if live is None:
                live = new_live(integration_id)
            if self.broadcaster is not None and self.broadcaster.watching(integration_id):
                self._pinned[integration_id] = live  # never evicted while clients follow it
            elif integration_id not in self._pinned:
                self._docs[integration_id] = live  # the most recently used, at the end
            try:
                await self._catch_up(live)
            except LookupError:  # uninstalled, perhaps through another replica
                self.forget(integration_id)
                raise IntegrationNotFound(f"no integration {integration_id}") from None
            try:
                yield live
            finally:
                # the document held now: a rollback during the session replaced ``live``
                held = self._pinned.get(integration_id) or self._docs.get(integration_id)
                if held is not None:
                    held.used_at = time.monotonic()
                self._fit(keep=integration_id)

    def sweep(self) -> None:
        """Drop what became idle since the last session, if over the budget."""
        self._fit(keep=None)

    def _fit(self, *, keep: uuid.UUID | None) -> None:
        """Measure ``keep`` (its session just ended), then drop the least recently used
        documents without clients, idle for ``idle_seconds`` (never ``keep``, in use), until
        the estimate of what all take fits the budget."""
        if keep is not None:
            self._measure(keep)
        if self._total > self.memory_bytes:
            idle_since = time.monotonic() - self.idle_seconds
            for integration_id, live in list(self._docs.items()):
                if self._total <= self.memory_bytes:
                    break
                if integration_id == keep or live.used_at > idle_since:
                    continue
                del self._docs[integration_id]
                self._total -= self._sizes.pop(integration_id, 0)
                EVICTED.inc()
        MEMORY.set(self._total)

    def _measure(self, integration_id: uuid.UUID) -> None:
        """Account the document's estimate anew (nothing, if it is no longer held)."""
        self._total -= self._sizes.pop(integration_id, 0)
        live = self._pinned.get(integration_id) or self._docs.get(integration_id)
        if live is not None:
            self._sizes[integration_id] = size = live.memory_estimate()
            self._total += size

    def forget(self, integration_id: uuid.UUID) -> None:
        self._docs.pop(integration_id, None)
        self._total -= self._sizes.pop(integration_id, 0)
        if self._pinned.pop(integration_id, None) is not None and self.broadcaster is not None:
            # its clients were told about a copy that is gone: they resynchronize
            self.broadcaster.invalidate(integration_id)

    def unpin(self, integration_id: uuid.UUID) -> None:
        """Its last live client left: the document is an ordinary cache entry again."""
        live = self._pinned.pop(integration_id, None)
        if live is not None and integration_id not in self._docs:
            self._docs[integration_id] = live
            self._fit(keep=integration_id)

    def applied_through(self, integration_id: uuid.UUID) -> int | None:
        """The last log id this process applied to the document (None: not in memory)."""
        live = self._pinned.get(integration_id) or self._docs.get(integration_id)
        return None if live is None else live.applied_through

    async def _catch_up(self, live: LiveDoc) -> None:
        async with self._db.connection() as conn:
            await self._catch_up_on(conn, live)

    async def rollback(self, live: LiveDoc) -> LiveDoc | None:
        """Undo what was applied to ``live`` and never appended (the caller holds the session
        and refused it): the document loaded again up to the log id ``live`` had reached,
        which takes its place. Later rows are left to the next catch-up, which tells the
        clients. If the log was folded past that id meanwhile, the state in between is gone:
        the document is forgotten instead and its clients resynchronize (None)."""
        fresh = new_live(live.integration_id)
        try:
            async with self._db.connection() as conn:
                await self._catch_up_on(conn, fresh, upto=live.applied_through)
        except BaseException:
            self.forget(live.integration_id)
            raise
        if fresh.applied_through != live.applied_through:
            self.forget(live.integration_id)
            return None
        if self._pinned.get(live.integration_id) is live:
            self._pinned[live.integration_id] = fresh
        if self._docs.get(live.integration_id) is live:
            self._docs[live.integration_id] = fresh
        return fresh

    async def _catch_up_on(
        self, conn: asyncpg.Connection, live: LiveDoc, *, upto: int | None = None
    ) -> None:
        """Apply what the log holds beyond ``applied_through`` (appended by other replicas, or
        everything when the document was just loaded), in one round trip (the snapshot too,
        when another replica folded the log past that view), and tell the broadcaster.
        ``upto``: not beyond that log id."""
        # a first load is nobody's news; later, only documents with clients here are
        tell = bool(
            live.loaded and self.broadcaster and self.broadcaster.watching(live.integration_id)
        )
        live.loaded = True
        before = None  # the state vector before a snapshot, when clients must hear the difference
        rows = await conn.fetch(
            'SELECT s.log_through AS through, u.id, u."update"'
            " FROM sync_shards s LEFT JOIN sync_updates u"
            " ON u.shard_id = s.id AND u.id > GREATEST($2, s.log_through)"
            " AND u.id <= $3 WHERE s.id = $1 ORDER BY u.id",
            live.integration_id,
            live.applied_through,
            upto if upto is not None else 2**63 - 1,
        )
        if not rows:
            raise LookupError(live.integration_id)
        through = rows[0]["through"]
        if through > live.applied_through:  # folded past us: the snapshot first
            snapshot = await conn.fetchval(
                "SELECT snapshot FROM sync_shards WHERE id = $1", live.integration_id
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
            self.broadcaster.publish(live.integration_id, live.doc.get_update(before))
        elif updates:
            found = [row["update"] for row in updates]
            merged = found[0] if len(found) == 1 else merge_updates(*found)
            self.broadcaster.publish(live.integration_id, merged)

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
        ``compact=False`` leaves folding the log to :meth:`compact_if_due` (a sync run does
        that at its end rather than between two pages).

        Once committed, the change goes to the broadcaster (``source``: the connection it
        came from, spared the echo) and, through ``pg_notify`` of its id, to other replicas."""
        if not update and extra is None:
            return None
        try:
            async with self._db.connection() as conn, conn.transaction():
                await lock(conn, live.integration_id)
                # Another replica may have appended since this session caught up: take its
                # rows now, under the lock, or applied_through would jump over them below.
                await self._catch_up_on(conn, live)
                update_id = None
                if update:
                    update_id = await conn.fetchval(
                        'INSERT INTO sync_updates (shard_id, origin, "update")'
                        " VALUES ($1, $2, $3) RETURNING id",
                        live.integration_id,
                        origin,
                        update,
                    )
                    await conn.execute(
                        "SELECT pg_notify($1, $2)", NOTIFY_CHANNEL,
                        f"{live.integration_id}:{update_id}",
                    )  # fmt: skip
                if extra is not None:
                    await extra(conn, update_id or 0)
        except BaseException:
            self.forget(live.integration_id)
            raise
        if update_id is not None:
            live.applied_through = update_id
            live.log_rows += 1
            live.log_bytes += len(update)
            if self.broadcaster is not None:
                self.broadcaster.publish(live.integration_id, update, source)
        if compact and self.due(live):
            await self.compact(live)
        return update_id

    def due(self, live: LiveDoc) -> bool:
        return live.log_rows >= self.compact_rows or live.log_bytes >= self.compact_bytes

    async def compact_if_due(self, integration_id: uuid.UUID) -> None:
        async with self.session(integration_id) as live:
            if self.due(live):
                await self.compact(live)

    async def compact(self, live: LiveDoc) -> None:
        """Fold the log into the snapshot. The caller holds the session."""
        full = live.doc.get_update()
        through = live.applied_through
        async with self._db.connection() as conn, conn.transaction():
            await lock(conn, live.integration_id)
            newer = await conn.fetchval(
                "SELECT max(id) FROM sync_updates WHERE shard_id = $1 AND id > $2",
                live.integration_id,
                through,
            )
            if newer is not None:
                return  # another replica appended meanwhile; the next compaction catches it
            await conn.execute(
                "UPDATE sync_shards SET snapshot = $2, log_through = $3, bytes = $4,"
                " records = $5 WHERE id = $1",
                live.integration_id,
                full,
                through,
                len(full),
                len(live.records),
            )
            await conn.execute(
                "DELETE FROM sync_updates WHERE shard_id = $1 AND id <= $2",
                live.integration_id,
                through,
            )
        live.log_rows, live.log_bytes, live.snapshot_bytes = 0, 0, len(full)
        DOCUMENT_BYTES.set(len(full))
        log.info("sync_compacted", integration_id=str(live.integration_id), bytes=len(full),
                 through=through)  # fmt: skip


async def lock(conn: asyncpg.Connection, integration_id: uuid.UUID) -> None:
    """The transaction-level lock that orders appends to one document across replicas."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"sync:{integration_id}"
    )
