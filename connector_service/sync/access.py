"""Reaching records wherever their shard is: the layouts of installs, cached, and sessions on
the shard that holds a key.

A process keeps the live layout of the installs it serves (:class:`Router`); it is a cache: a
session on a shard that was split meanwhile raises :class:`layout.ShardSplit`, and the layout is
read again and the key placed anew. A stream that has no shard yet (the root is split and it
never had records) gets its first on the first write.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from connector_service.sync import shard_sql
from connector_service.sync.layout import Layout, Shard, ShardSplit, key_hash

if TYPE_CHECKING:
    from connector_service.sync.document import LiveDoc
    from connector_service.sync.store import DocStore

ATTEMPTS = 5
CACHED_LAYOUTS = 1000


class Router:
    def __init__(self, db: Any) -> None:
        self._db = db
        self._layouts: OrderedDict[uuid.UUID, Layout] = OrderedDict()

    async def layout(self, integration_id: uuid.UUID, *, fresh: bool = False) -> Layout:
        found = None if fresh else self._layouts.get(integration_id)
        if found is None:
            async with self._db.connection() as conn:
                found = await shard_sql.layout(conn, integration_id)
            self._layouts[integration_id] = found
            while len(self._layouts) > CACHED_LAYOUTS:
                self._layouts.popitem(last=False)
        self._layouts.move_to_end(integration_id)
        return found

    def forget(self, integration_id: uuid.UUID) -> None:
        self._layouts.pop(integration_id, None)

    async def holding(
        self, integration_id: uuid.UUID, stream: str, *, fresh: bool = False
    ) -> Layout:
        """The layout, with shards for ``stream``: its first made if it has none (never
        concluded from the cache alone)."""
        layout = await self.layout(integration_id, fresh=fresh)
        if layout.of_stream(stream):
            return layout
        if not fresh:
            layout = await self.layout(integration_id, fresh=True)
            if layout.of_stream(stream):
                return layout
        async with self._db.connection() as conn:
            await shard_sql.stream_shard(conn, integration_id, stream)
        return await self.layout(integration_id, fresh=True)

    async def shard_for(
        self, integration_id: uuid.UUID, record_key: str, *, fresh: bool = False,
        create: bool = False,
    ) -> Shard | None:  # fmt: skip
        """The live shard of the key; with ``create``, the stream's first if it has none."""
        if create:
            stream = record_key.partition("/")[0]
            return (await self.holding(integration_id, stream, fresh=fresh)).route(record_key)
        layout = await self.layout(integration_id, fresh=fresh)
        shard = layout.route(record_key)
        if shard is None and not fresh:
            shard = (await self.layout(integration_id, fresh=True)).route(record_key)
        return shard


@contextlib.asynccontextmanager
async def session_for(
    store: DocStore, integration_id: uuid.UUID, record_key: str, *, create: bool = False
) -> AsyncIterator[LiveDoc | None]:
    """A session on the shard that holds ``record_key`` (None: its stream has no shard, and
    ``create`` was not asked)."""
    fresh = False
    for _ in range(ATTEMPTS):
        shard = await store.router.shard_for(integration_id, record_key, fresh=fresh,
                                             create=create)  # fmt: skip
        if shard is None:
            yield None
            return
        stack = contextlib.AsyncExitStack()
        try:
            live = await stack.enter_async_context(store.session(shard.id))
        except ShardSplit:
            await stack.aclose()
            fresh = True
            continue
        async with stack:
            yield live
        return
    raise ShardSplit(integration_id)


async def read(
    store: DocStore, integration_id: uuid.UUID, keys: Iterable[str]
) -> dict[str, dict[str, Any] | None]:
    """The records of ``keys`` as their shards hold them now (None: no such record)."""
    wanted = list(dict.fromkeys(keys))
    out: dict[str, dict[str, Any] | None] = {}
    fresh = False
    for _ in range(ATTEMPTS):
        layout = await store.router.layout(integration_id, fresh=fresh)
        if not fresh and any(layout.route(k) is None for k in wanted):
            # "no shard" is never concluded from the cache: another process may just have
            # given the stream its first shards
            layout = await store.router.layout(integration_id, fresh=True)
        groups: dict[uuid.UUID, list[str]] = {}
        for k in wanted:
            shard = layout.route(k, key_hash(k))
            if shard is None:
                out[k] = None
            else:
                groups.setdefault(shard.id, []).append(k)
        try:
            for shard_id, found in sorted(groups.items()):
                async with store.session(shard_id, transient=True) as live:
                    for k in found:
                        out[k] = live.get(k)
        except ShardSplit:
            fresh = True
            wanted = [k for k in wanted if k not in out]
            continue
        return out
    raise ShardSplit(integration_id)
