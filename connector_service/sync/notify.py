"""Changes made by other replicas, for the WebSocket clients of this one.

Every append sends ``pg_notify('seedos_sync', '<shard id>:<log id>')`` in its transaction, so
the notification arrives once the change is committed, and carries ids only; a split sends
``'<shard id>:split'``, and the shard's clients here are told to move on.
Each replica listens on one dedicated connection (never a pooled one: LISTEN is session state).
For a document with clients here whose log id is beyond what this process applied, a session
catches the document up from the log (the bytes come from there) and the store publishes what
it applied to the hub. Notifications are coalesced per document; when the listening
connection drops, it is opened again (with backoff) and every watched document caught up, so
nothing sent while it was down is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import structlog

from common.listen import listen_forever
from connector_service.sync.hub import Hub
from connector_service.sync.shard_sql import LAYOUT, NOTIFY_CHANNEL, SPLIT
from connector_service.sync.store import DocStore

log = structlog.get_logger(component="connector_service.sync.notify")


class ChangeListener:
    def __init__(self, dsn: str, store: DocStore, hub: Hub, *, application_name: str) -> None:
        self._dsn = dsn
        self._store = store
        self._hub = hub
        self._application_name = application_name
        self._dirty: set[uuid.UUID] = set()
        self._wake = asyncio.Event()
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Listen (reconnecting) and catch documents up, until cancelled."""
        worker = asyncio.create_task(self._catch_up_forever(), name="sync-catch-up")
        try:
            await self._listen_forever()
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def _listen_forever(self) -> None:
        def listening() -> None:
            self.connected.set()
            self._mark(list(self._hub.rooms))  # whatever was sent while not listening

        await listen_forever(
            self._dsn, NOTIFY_CHANNEL, self._on_notify, application_name=self._application_name,
            on_listening=listening, on_lost=self.connected.clear,
        )  # fmt: skip

    def _on_notify(self, payload: str) -> None:
        document, _, log_id = payload.partition(":")
        if log_id == SPLIT:  # split by another replica (or this one: retiring twice is harmless)
            with contextlib.suppress(ValueError):
                self._store.retire(uuid.UUID(document))
            return
        if log_id == LAYOUT:  # the install's streams got shards: its cached layout is stale
            with contextlib.suppress(ValueError):
                self._store.router.forget(uuid.UUID(document))
            return
        try:
            integration_id, update_id = uuid.UUID(document), int(log_id)
        except ValueError:
            return
        if not self._hub.watching(integration_id):
            return
        through = self._store.applied_through(integration_id)
        if through is not None and update_id <= through:
            return  # ours, or already caught up
        self._mark([integration_id])

    def _mark(self, ids: list[uuid.UUID]) -> None:
        if ids:
            self._dirty.update(ids)
            self._wake.set()

    async def _catch_up_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            failed = []
            for integration_id in dirty:
                if not self._hub.watching(integration_id):
                    continue
                try:
                    async with self._store.session(integration_id):
                        pass  # the session catches up; the store publishes what it applied
                except Exception as exc:
                    failed.append(integration_id)
                    log.warning("sync_catch_up_failed", integration_id=str(integration_id),
                                error=type(exc).__name__)  # fmt: skip
            if failed:  # the database may be down for a moment: try those again shortly
                await asyncio.sleep(1)
                self._mark(failed)
