"""Appends of many shards committed together: the WebSocket rooms' group commit.

Each room (shard) batches its clients' updates (:mod:`writes`), but with clients spread over many
shards a room's batch is often one or two updates, and a transaction each would cost more than
the updates. So a room hands its batch here, still holding its shard's session, and waits: what
all rooms hand in while the previous commit runs goes into the next one, one transaction for
every shard in it (:meth:`store.DocStore.append_many`, its outbox rows in one statement per
install). A failed commit fails every batch in it, as each would have failed alone (the
database down); each room drops its document from memory and its clients resynchronize.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from connector_service.sync import repository, service
from connector_service.sync.document import CLIENT, LiveDoc
from connector_service.sync.store import DocStore

Changes = dict[str, set[str] | None]


class GroupCommit:
    def __init__(self, store: DocStore) -> None:
        self.store = store
        self._waiting: list[tuple[LiveDoc, bytes, uuid.UUID, Changes, Any, asyncio.Future[None]]]
        self._waiting = []
        self._task: asyncio.Task[None] | None = None

    async def append(
        self, live: LiveDoc, update: bytes, *, integration_id: uuid.UUID, changes: Changes,
        source: Any,
    ) -> None:  # fmt: skip
        """Commit a room's batch (the caller holds the shard's session) with the others
        waiting; raises what the commit raised."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((live, update, integration_id, changes, source, future))
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sync-group-commit")
        await future

    async def _run(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                await self._commit(group)
        finally:
            self._task = None
            for *_, future in self._waiting:  # cancelled (shutdown): nobody will commit these
                if not future.done():
                    future.set_exception(ConnectionAbortedError("shutting down"))
            self._waiting = []

    async def _commit(self, group: list[Any]) -> None:
        outbox: dict[uuid.UUID, list[tuple[str, str, list[str], bool]]] = {}
        for _, _, integration_id, changes, _, _ in group:
            outbox.setdefault(integration_id, []).extend(service.outbox_rows(changes))

        async def enqueue(conn: Any, _update_id: int) -> None:
            for integration_id, rows in outbox.items():
                await repository.enqueue(conn, integration_id, rows)

        try:
            await self.store.append_many(
                [(live, update) for live, update, *_ in group], CLIENT,
                enqueue if any(outbox.values()) else None,
                sources=[source for *_, source, _ in group],
            )  # fmt: skip
        except Exception as exc:
            for *_, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        for *_, future in group:
            if not future.done():
                future.set_result(None)
