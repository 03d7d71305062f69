"""The sync documents this process holds in memory, within a budget.

Shards with live clients here are *pinned*: never dropped, and counted. The others are a cache,
least recently used first: when a session ends, its document is measured
(:meth:`document.LiveDoc.memory_estimate`) and, while the estimate of what all take is over the
budget (``SEEDOS_SYNC_MEMORY_MB``), the least recently used documents idle for ``idle_seconds``
are dropped (two large ones in use at once must not evict each other page after page; a run or a
listing only passing through marks its documents idle at once). :meth:`Held.fit` with no
document to keep, every few seconds, drops those that became idle since. The sizes are kept as
running sums: a session's end measures only its own document.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

from prometheus_client import Counter, Gauge

from connector_service.sync.document import LiveDoc, new_live

MEMORY = Gauge(
    "seedos_sync_memory_bytes",
    "Estimated memory of the sync documents held in this process.",
    multiprocess_mode="livesum",
)
EVICTED = Counter(
    "seedos_sync_documents_evicted_total", "Sync documents dropped from memory for the budget."
)
DEFAULT_MEMORY_BYTES = 512 * 1024 * 1024


class Held:
    def __init__(self, *, memory_bytes: int, idle_seconds: float) -> None:
        self.memory_bytes = memory_bytes
        self.idle_seconds = idle_seconds
        self._pinned: dict[uuid.UUID, LiveDoc] = {}  # documents with live clients here
        # the others, least recently used first (a dict keeps its order; a use moves to the end)
        self._docs: dict[uuid.UUID, LiveDoc] = {}
        self._sizes: dict[uuid.UUID, int] = {}  # estimates when their last session ended
        self._total = 0

    def get(self, shard_id: uuid.UUID) -> LiveDoc | None:
        return self._pinned.get(shard_id) or self._docs.get(shard_id)

    def take(self, shard_id: uuid.UUID, *, pinned: bool) -> LiveDoc:
        """The document a session starts with (a new, empty one if not held), now the most
        recently used; ``pinned`` when clients follow it here."""
        live = self._pinned.get(shard_id) or self._docs.pop(shard_id, None)
        if live is None:
            live = new_live(shard_id)
        if pinned:
            self._pinned[shard_id] = live
        elif shard_id not in self._pinned:
            self._docs[shard_id] = live
        return live

    def replace(self, old: LiveDoc, new: LiveDoc) -> None:
        """``new`` is held where ``old`` was (a rollback)."""
        if self._pinned.get(old.shard_id) is old:
            self._pinned[old.shard_id] = new
        if self._docs.get(old.shard_id) is old:
            self._docs[old.shard_id] = new

    def done(self, shard_id: uuid.UUID, *, transient: bool) -> None:
        """A session ended: the document is measured, then the budget enforced (a
        ``transient`` one as evictable as any idle document, a used one not)."""
        held = self.get(shard_id)
        if held is not None:
            held.used_at = 0.0 if transient else time.monotonic()
        self.fit(keep=shard_id, evictable=transient)

    def fit(self, *, keep: uuid.UUID | None = None, evictable: bool = False) -> None:
        """Measure ``keep`` (its session just ended), then drop the least recently used
        documents without clients, idle for ``idle_seconds`` (not ``keep``, in use, unless
        ``evictable``), until the estimate of what all take fits the budget."""
        if keep is not None:
            self._measure(keep)
        if self._total > self.memory_bytes:
            idle_since = time.monotonic() - self.idle_seconds
            for shard_id, live in list(self._docs.items()):
                if self._total <= self.memory_bytes:
                    break
                if (shard_id == keep and not evictable) or live.used_at > idle_since:
                    continue
                del self._docs[shard_id]
                self._total -= self._sizes.pop(shard_id, 0)
                EVICTED.inc()
        MEMORY.set(self._total)

    def _measure(self, shard_id: uuid.UUID) -> None:
        """Account the document's estimate anew (nothing, if it is no longer held)."""
        self._total -= self._sizes.pop(shard_id, 0)
        live = self.get(shard_id)
        if live is not None:
            self._sizes[shard_id] = size = live.memory_estimate()
            self._total += size

    def drop(self, shard_id: uuid.UUID) -> bool:
        """Out of memory; whether it had clients here."""
        self._docs.pop(shard_id, None)
        self._total -= self._sizes.pop(shard_id, 0)
        return self._pinned.pop(shard_id, None) is not None

    def unpin(self, shard_id: uuid.UUID) -> None:
        """Its last live client left: the document is an ordinary cache entry again."""
        live = self._pinned.pop(shard_id, None)
        if live is not None and shard_id not in self._docs:
            self._docs[shard_id] = live
            self.fit(keep=shard_id)

    def items(self) -> Iterator[tuple[uuid.UUID, LiveDoc]]:
        yield from list(self._pinned.items())
        yield from list(self._docs.items())
