"""The records deliveries carry, merged into an install's documents a batch at a time.

Each merge of a stream takes its shards' locks and commits a transaction of its own (about ten
statements), so deliveries of one install merged one by one queue behind each other's
transactions: at 32 concurrent senders, ~200 deliveries/s (bench/webhooks.py). Here, the
records of the deliveries that arrive while a merge of the same install and stream runs wait
and go into the next merge together: one transaction for all of them, each delivery recorded as
taken in that same transaction, each answered once it is durable. A delivery alone is merged at
once, as before.

A batch holds one change per record: a change to a record already waiting goes into a batch of
its own after it, so changes to one record apply in the order they arrived (a deletion then a
re-creation stays a deletion then a re-creation).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog

from connector_service.outbound import events as outbound_events
from connector_service.sync import pulls as sync_pulls
from connector_service.sync.store import DocStore
from connector_service.webhooks import repository

BATCH_MAX = 200  # records in one merge, at most
FOLD_SECONDS = 30.0
log = structlog.get_logger(component="connector_service.webhooks")


@dataclass
class Batch:
    records: dict[str, Any] = field(default_factory=dict)  # primary key -> record
    deleted: set[str] = field(default_factory=set)
    taken: dict[str, str] = field(default_factory=dict)  # delivery id -> event type
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def room_for(self, key: str) -> bool:
        return key not in self.records and key not in self.deleted and (
            len(self.records) + len(self.deleted) < BATCH_MAX
        )  # fmt: skip


class Merges:
    """Batches of carried records per (install, stream), merged one after another."""

    def __init__(self, store: DocStore, *, fold_every: float = FOLD_SECONDS) -> None:
        self.store = store
        self._queues: dict[tuple[uuid.UUID, str], deque[Batch]] = {}
        self._draining: dict[tuple[uuid.UUID, str], asyncio.Task[None]] = {}
        self.merges = 0  # merges run (the tests and benches read it)
        # an install that only hears webhooks has no sync run to fold its shards' logs after:
        # folded here, after a drain, at most once per fold_every seconds per install
        self.fold_every = fold_every
        self._folded: dict[uuid.UUID, float] = {}
        self._folding: set[asyncio.Task[None]] = set()

    async def apply(
        self, integration_id: uuid.UUID, stream: str, pk: str, *, key: str,
        record: dict[str, Any] | None, delivery: str, event_type: str,
    ) -> None:  # fmt: skip
        """Merge ``record`` (None: the record ``key`` is deleted) with whatever else is
        waiting, recording ``delivery`` as taken in the same transaction; returns once it is
        durable, raises what the merge raised."""
        queue = self._queues.setdefault((integration_id, stream), deque())
        if not queue or not queue[-1].room_for(key):
            queue.append(Batch())
        batch = queue[-1]
        if record is None:
            batch.deleted.add(key)
        else:
            batch.records[key] = record
        batch.taken[delivery] = event_type
        if (integration_id, stream) not in self._draining:
            self._draining[(integration_id, stream)] = asyncio.create_task(
                self._drain(integration_id, stream, pk), name="webhook-merges"
            )
        await asyncio.shield(batch.done)  # a caller gone does not stop the others' merge

    async def _drain(self, integration_id: uuid.UUID, stream: str, pk: str) -> None:
        queue = self._queues[(integration_id, stream)]
        batch = None
        try:
            while queue:
                batch = queue.popleft()  # later arrivals go into a batch of their own
                self.merges += 1
                try:
                    await sync_pulls.merge(
                        self.store, integration_id, stream, pk, list(batch.records.values()),
                        sorted(batch.deleted), _taken(integration_id, stream, batch),
                    )  # fmt: skip
                except Exception as exc:
                    _fail(batch.done, exc)
                else:
                    batch.done.set_result(None)
        finally:
            self._draining.pop((integration_id, stream), None)
            self._queues.pop((integration_id, stream), None)
            self._fold(integration_id)
            for left in [batch, *queue]:  # cancelled (shutdown): nobody will merge these
                if left is not None and not left.done.done():
                    _fail(left.done, ConnectionAbortedError("shutting down"))

    def _fold(self, integration_id: uuid.UUID) -> None:
        now = time.monotonic()
        if now - self._folded.get(integration_id, -math.inf) < self.fold_every:
            return
        self._folded[integration_id] = now
        task = asyncio.create_task(self._fold_now(integration_id), name="webhook-fold")
        self._folding.add(task)
        task.add_done_callback(self._folding.discard)

    async def _fold_now(self, integration_id: uuid.UUID) -> None:
        try:
            await self.store.compact_install(integration_id)  # the shards whose logs are due
        except Exception as exc:  # the next drain tries again after fold_every
            log.warning("webhook_fold_failed", integration_id=str(integration_id),
                        error=type(exc).__name__)  # fmt: skip


def _fail(done: asyncio.Future[None], exc: BaseException) -> None:
    done.set_exception(exc)
    done.exception()  # retrieved here: each caller still waiting raises it, and one gone is fine


def _taken(integration_id: uuid.UUID, stream: str, batch: Batch) -> sync_pulls.SaveCursor:
    """In the merge's (last) transaction: its deliveries recorded as taken, and one
    records.changed event (origin ``webhook``) for the batch, naming at most MAX_KEYS keys."""
    most = outbound_events.MAX_KEYS
    changed = outbound_events.records_changed(
        stream=stream, origin="webhook", upserted=itertools.islice(batch.records, most),
        deleted=itertools.islice(batch.deleted, most),
    )  # fmt: skip
    changed.update(upserted=len(batch.records), deleted=len(batch.deleted),
                   truncated=len(batch.records) > most or len(batch.deleted) > most)  # fmt: skip

    async def record(conn: asyncpg.Connection, _update_id: int) -> None:
        await repository.taken_many(conn, integration_id, batch.taken)
        await outbound_events.publish_for_install(
            conn, integration_id=integration_id, type=outbound_events.RECORDS_CHANGED, data=changed
        )

    return record
