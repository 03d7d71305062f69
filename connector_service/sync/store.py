"""Sync documents: one pycrdt document per installed connector, durable in PostgreSQL.

A document is its snapshot (``integration_connectors.sync_version``, a full state update that
covers the log through ``sync_log_through``) plus the updates appended since (``sync_updates``).
Every change is appended, and committed, before it is acknowledged or broadcast; appends to one
document take a transaction-level advisory lock, so log ids grow in commit order per document
and any replica can catch up by reading the ids above the last one it applied. Past a threshold
the log is folded into the snapshot, under the same lock, and the folded rows deleted.

In this process each document is held in memory (least recently used dropped) behind an
asyncio lock: a session catches the document up with the log, then reads or changes it. A
change whose append fails is dropped from memory with the document, which is loaded again from
the database next time, so memory never runs ahead of what is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
import structlog
from cachetools import LRUCache
from prometheus_client import Gauge
from pycrdt import Doc, Map, merge_updates

from connector_service.sync import records as rec

log = structlog.get_logger(component="connector_service.sync.store")

DOCUMENT_BYTES = Gauge(
    "seedos_sync_document_bytes", "Size of the largest sync document snapshot written lately."
)
EXTERNAL, PLATFORM, CLIENT, LOAD = "external", "platform", "client", "load"
DELETED = None  # in a change set: the record was deleted


@dataclass
class LiveDoc:
    integration_id: uuid.UUID
    doc: Doc
    records: Map
    applied_through: int = 0
    loaded: bool = False  # caught up at least once: what it applies next is news to clients
    log_rows: int = 0  # appended since the snapshot (as far as this process knows)
    log_bytes: int = 0
    # record key -> changed fields (None: deleted), collected from platform and client changes
    changes: dict[str, set[str] | None] = field(default_factory=dict)
    _updates: list[bytes] = field(default_factory=list)

    def state_vector(self) -> bytes:
        return self.doc.get_state()

    def diff(self, state_vector: bytes | None = None) -> bytes:
        """The update a peer with ``state_vector`` lacks (ValueError if it is malformed)."""
        return self.doc.get_update(state_vector)

    def get(self, record_key: str) -> dict[str, Any] | None:
        value = self.records.get(record_key)
        return value.to_py() if isinstance(value, Map) else None

    def transact(self, origin: str, change: Callable[[Map], None]) -> tuple[bytes, dict]:
        """Run ``change`` on the records map in one transaction; returns the update it made
        (empty when nothing changed) and the record changes it made (for platform origins)."""
        self._updates.clear()
        self.changes = {}
        with self.doc.transaction(origin=origin):
            change(self.records)
        return self._take()

    def apply(self, update: bytes, origin: str) -> tuple[bytes, dict]:
        """Integrate a peer's update (ValueError if malformed); returns what it changed."""
        self._updates.clear()
        self.changes = {}
        with self.doc.transaction(origin=origin):
            self.doc.apply_update(update)
        # What changed is what the document reports, not a moved state vector: an update that
        # only deletes leaves the state vector as it was.
        if not self._updates:
            return b"", {}
        self._take()
        return update, self.changes

    def _take(self) -> tuple[bytes, dict]:
        updates = list(self._updates)
        self._updates.clear()
        if not updates:
            return b"", {}
        update = updates[0] if len(updates) == 1 else merge_updates(*updates)
        return update, self.changes

    # observers ----------------------------------------------------------------------------

    def _on_update(self, event: Any) -> None:
        self._updates.append(event.update)

    def _on_records(self, events: list[Any]) -> None:
        for event in events:
            if event.transaction.origin in (EXTERNAL, LOAD):
                continue
            path = list(event.path)
            if not path:  # records added, replaced or deleted
                for record_key, change in event.keys.items():
                    if change.get("action") == "delete":
                        self.changes[record_key] = DELETED
                    else:
                        value = self.records.get(record_key)
                        fields = set(value.keys()) if isinstance(value, Map) else set()
                        self.changes[record_key] = fields
            else:
                record_key = str(path[0])
                fields = {str(path[1])} if len(path) > 1 else set(event.keys)
                known = self.changes.get(record_key, set())
                if known is not DELETED:
                    self.changes[record_key] = known | fields


def new_live(integration_id: uuid.UUID) -> LiveDoc:
    doc = Doc()
    records = doc.get(rec.ROOT, type=Map)
    live = LiveDoc(integration_id=integration_id, doc=doc, records=records)
    doc.observe(live._on_update)
    records.observe_deep(live._on_records)
    return live


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
        cache_size: int = 64,
        compact_rows: int = 500,
        compact_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self._db = db
        self.broadcaster = broadcaster
        self._pinned: dict[uuid.UUID, LiveDoc] = {}  # documents with live clients here
        self._docs: LRUCache[uuid.UUID, LiveDoc] = LRUCache(maxsize=cache_size)
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
            live = self._pinned.get(integration_id) or self._docs.get(integration_id)
            if live is None:
                live = self._docs[integration_id] = new_live(integration_id)
            if self.broadcaster is not None and self.broadcaster.watching(integration_id):
                self._pinned[integration_id] = live  # never evicted while clients follow it
            await self._catch_up(live)
            yield live

    def forget(self, integration_id: uuid.UUID) -> None:
        self._docs.pop(integration_id, None)
        if self._pinned.pop(integration_id, None) is not None and self.broadcaster is not None:
            # its clients were told about a copy that is gone: they resynchronize
            self.broadcaster.invalidate(integration_id)

    def unpin(self, integration_id: uuid.UUID) -> None:
        """Its last live client left: the document is an ordinary cache entry again."""
        live = self._pinned.pop(integration_id, None)
        if live is not None and integration_id not in self._docs:
            self._docs[integration_id] = live

    def applied_through(self, integration_id: uuid.UUID) -> int | None:
        """The last log id this process applied to the document (None: not in memory)."""
        live = self._pinned.get(integration_id) or self._docs.get(integration_id)
        return None if live is None else live.applied_through

    async def _catch_up(self, live: LiveDoc) -> None:
        async with self._db.connection() as conn:
            await self._catch_up_on(conn, live)

    async def _catch_up_on(self, conn: asyncpg.Connection, live: LiveDoc) -> None:
        """Apply what the log holds beyond ``applied_through`` (appended by other replicas, or
        everything when the document was just loaded) and tell the broadcaster what it was."""
        # a first load is nobody's news; later, only documents with clients here are
        tell = bool(
            live.loaded and self.broadcaster and self.broadcaster.watching(live.integration_id)
        )
        live.loaded = True
        before = None  # the state vector before a snapshot, when clients must hear the difference
        through = await conn.fetchval(
            "SELECT sync_log_through FROM integration_connectors WHERE id = $1",
            live.integration_id,
        )
        if through is None:
            raise LookupError(live.integration_id)
        if through > live.applied_through:  # folded past us: the snapshot first
            snapshot = await conn.fetchval(
                "SELECT sync_version FROM integration_connectors WHERE id = $1",
                live.integration_id,
            )
            if snapshot:
                before = live.doc.get_state() if tell else None
                with live.doc.transaction(origin=LOAD):
                    live.doc.apply_update(snapshot)
            live.applied_through, live.log_rows, live.log_bytes = through, 0, 0
        rows = await conn.fetch(
            'SELECT id, "update" FROM sync_updates WHERE integration_id = $1 AND id > $2'
            " ORDER BY id",
            live.integration_id,
            live.applied_through,
        )
        if rows:
            with live.doc.transaction(origin=LOAD):
                for row in rows:
                    live.doc.apply_update(row["update"])
            live.applied_through = rows[-1]["id"]
            live.log_rows += len(rows)
            live.log_bytes += sum(len(r["update"]) for r in rows)
        live._updates.clear()
        if not tell or self.broadcaster is None:
            return
        if before is not None:  # not the whole snapshot: what it and the rows added for us
            self.broadcaster.publish(live.integration_id, live.doc.get_update(before))
        elif rows:
            updates = [row["update"] for row in rows]
            merged = updates[0] if len(updates) == 1 else merge_updates(*updates)
            self.broadcaster.publish(live.integration_id, merged)

    async def append(
        self,
        live: LiveDoc,
        origin: str,
        update: bytes,
        extra: Extra | None = None,
        *,
        source: object | None = None,
    ) -> int | None:
        """Make a change durable: the update, and in the same transaction whatever ``extra``
        writes (a cursor, outbox rows). On failure the document is dropped from memory.

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
                        'INSERT INTO sync_updates (integration_id, origin, "update")'
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
        if live.log_rows >= self.compact_rows or live.log_bytes >= self.compact_bytes:
            await self.compact(live)
        return update_id

    async def compact(self, live: LiveDoc) -> None:
        """Fold the log into the snapshot. The caller holds the session."""
        full = live.doc.get_update()
        through = live.applied_through
        async with self._db.connection() as conn, conn.transaction():
            await lock(conn, live.integration_id)
            newer = await conn.fetchval(
                "SELECT max(id) FROM sync_updates WHERE integration_id = $1 AND id > $2",
                live.integration_id,
                through,
            )
            if newer is not None:
                return  # another replica appended meanwhile; the next compaction catches it
            await conn.execute(
                "UPDATE integration_connectors SET sync_version = $2, sync_log_through = $3"
                " WHERE id = $1",
                live.integration_id,
                full,
                through,
            )
            await conn.execute(
                "DELETE FROM sync_updates WHERE integration_id = $1 AND id <= $2",
                live.integration_id,
                through,
            )
        live.log_rows, live.log_bytes = 0, 0
        DOCUMENT_BYTES.set(len(full))
        log.info("sync_compacted", integration_id=str(live.integration_id), bytes=len(full),
                 through=through)  # fmt: skip


async def lock(conn: asyncpg.Connection, integration_id: uuid.UUID) -> None:
    """The transaction-level lock that orders appends to one document across replicas."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"sync:{integration_id}"
    )
