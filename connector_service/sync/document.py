"""A sync document in memory: the pycrdt document of one shard of an installed connector, what
a change to it changed, and the recent updates that let a returning peer get a cheap diff.

:class:`LiveDoc` is what a :class:`store.DocStore` session holds; it never touches the
database. Changes made in it (:meth:`LiveDoc.transact`, :meth:`LiveDoc.apply`) return the update
the document emitted, which is what the store appends to the log.
"""

from __future__ import annotations

import contextlib
import inspect
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter
from pycrdt import Doc, Map, merge_updates

from connector_service.sync import records as rec
from connector_service.sync.layout import Shard
from connector_service.sync.lib0 import decode_state_vector

DIFFS = Counter(
    "seedos_sync_diffs_total",
    "Diffs served, from the recent updates (tail) or by scanning the document (scan).",
    ["source"],
)
EXTERNAL, PLATFORM, CLIENT, LOAD = "external", "platform", "client", "load"
DELETED = None  # in a change set: the record was deleted


TAIL_UPDATES = 256
TAIL_BYTES = 16 * 1024 * 1024
# A pycrdt document takes about 13-15 times the size of its encoded state in memory (measured
# on this machine: 20,000 contact records, a 6.0 MB state, 76 MB built and 88 MB loaded).
MEMORY_PER_STATE_BYTE = 15


@dataclass
class LiveDoc:
    shard_id: uuid.UUID
    doc: Doc
    records: Map
    shard: Shard | None = None  # what the shard covers, known once loaded
    applied_through: int = 0
    loaded: bool = False  # caught up at least once: what it applies next is news to clients
    log_rows: int = 0  # appended since the snapshot (as far as this process knows)
    log_bytes: int = 0
    snapshot_bytes: int = 0  # the size of the snapshot it was loaded from (or last wrote)
    used_at: float = 0.0  # time.monotonic() at the end of its last session
    # record key -> changed fields (None: deleted), collected from platform and client changes
    changes: dict[str, set[str] | None] = field(default_factory=dict)
    # the latest updates with the state each applied to: a peer exactly at one of those states
    # gets the merge of what followed, instead of a scan of the whole document
    tail: deque[tuple[bytes, bytes]] = field(default_factory=deque)  # (state vector, update)
    tail_bytes: int = 0
    # every deletion of the document, as one update: a peer that lacks a deletion made without
    # an insertion (it leaves the state vector as it was) still gets it with a tail diff
    deletions: bytes | None = None
    _deep: Callable[[list[Any]], None] | None = field(default=None, repr=False)

    def memory_estimate(self) -> int:
        """Bytes this document takes in memory, about: what it was stored as (snapshot and
        log since), times what a document takes per byte of its encoded state, and its tail."""
        return (self.snapshot_bytes + self.log_bytes) * MEMORY_PER_STATE_BYTE + self.tail_bytes

    def state_vector(self) -> bytes:
        return self.doc.get_state()

    def diff(self, state_vector: bytes | None = None) -> bytes:
        """The update a peer with ``state_vector`` lacks (ValueError if it is malformed)."""
        if state_vector is not None and self.tail and self.deletions is not None:
            with contextlib.suppress(Exception):  # malformed: get_update says so below
                found = self._tail_from(state_vector)
                if found is not None:
                    updates = [update for _, update in list(self.tail)[found:]]
                    DIFFS.labels("tail").inc()
                    return merge_updates(self.deletions, *updates)
        DIFFS.labels("scan").inc()
        return self.doc.get_update(state_vector)

    def _tail_from(self, state_vector: bytes) -> int | None:
        """Where in the tail a peer at ``state_vector`` stands, if it does. The tail keeps the
        state vectors as encoded (decoding one on every update cost a fifth of a busy
        document's time); equal bytes are the common case, and encodings that order clients
        differently are compared decoded, only here."""
        for i, (before, _) in enumerate(self.tail):
            if before == state_vector:
                return i
        wanted = decode_state_vector(state_vector)
        for i, (before, _) in enumerate(self.tail):
            if decode_state_vector(before) == wanted:
                return i
        return None

    def get(self, record_key: str) -> dict[str, Any] | None:
        value = self.records.get(record_key)
        return value.to_py() if isinstance(value, Map) else None

    def transact(self, origin: str, change: Callable[[Map], None]) -> tuple[bytes, dict]:
        """Run ``change`` on the records map in one transaction; returns the update it made
        (empty when nothing changed) and, unless it came from the external system, the record
        changes it made (for the outbox)."""
        return self._run(origin, lambda: change(self.records), watch=origin != EXTERNAL)

    def apply(self, update: bytes, origin: str) -> tuple[bytes, dict]:
        """Integrate a peer's update (ValueError if malformed); returns what the document
        integrated (the update its transaction emitted: what is logged and broadcast, so
        memory never runs ahead of the log) and the record changes it made, or nothing when
        it brought nothing new. Parts of the update that depend on items the document lacks
        are kept aside by it (pending) and are not in what it returns: :func:`lib0.lacks`
        tells, and the caller refuses the update and rolls the document back."""
        return self._run(origin, lambda: self.doc.apply_update(update), watch=True)

    def _run(self, origin: str, act: Callable[[], None], *, watch: bool) -> tuple[bytes, dict]:
        """``act`` in one transaction: the update the document emitted for it (what changed
        is what the document reports, not a moved state vector: an update that only deletes
        leaves the state vector as it was), and with ``watch`` the record changes it made."""
        self.changes = {}
        emitted: list[bytes] = []
        before = self.doc.get_state()
        subscription = self.doc.observe(lambda event: emitted.append(event.update))
        deep = self.records.observe_deep(self._deep_callback()) if watch else None
        try:
            with self.doc.transaction(origin=origin):
                act()
        finally:
            self.doc.unobserve(subscription)
            if deep is not None:
                self.records.unobserve(deep)
        if not emitted:
            return b"", {}
        update = emitted[0] if len(emitted) == 1 else merge_updates(*emitted)
        self.remember(before, update)
        return update, self.changes

    def load(self, update: bytes) -> None:
        """An update from the log (written by this or another replica): no outbox, no echo."""
        before = self.doc.get_state()
        with self.doc.transaction(origin=LOAD):
            self.doc.apply_update(update)
        self.remember(before, update)

    def remember(self, before: bytes, update: bytes) -> None:
        if self.deletions is not None and self.doc.get_state() == before:  # deletions only
            self.deletions = merge_updates(self.deletions, update)
        self.tail.append((before, update))
        self.tail_bytes += len(update)
        while self.tail and (len(self.tail) > TAIL_UPDATES or self.tail_bytes > TAIL_BYTES):
            self.tail_bytes -= len(self.tail.popleft()[1])

    def forget_tail(self) -> None:
        self.tail.clear()
        self.tail_bytes = 0
        self.deletions = None

    # observers ----------------------------------------------------------------------------

    def _deep_callback(self) -> Callable[[list[Any]], None]:
        """``_on_records`` as pycrdt's ``observe_deep`` takes it, made once: pycrdt inspects a
        callback's signature on every subscription (a third of a WebSocket update's apply), and
        ``inspect.signature`` returns at once a ``__signature__`` the function carries."""
        if self._deep is None:

            def on_records(events: list[Any]) -> None:
                self._on_records(events)

            on_records.__signature__ = inspect.signature(on_records)  # type: ignore[attr-defined]
            self._deep = on_records
        return self._deep

    def _on_records(self, events: list[Any]) -> None:
        for event in events:
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


def new_live(shard_id: uuid.UUID) -> LiveDoc:
    doc = Doc()
    records = doc.get(rec.ROOT, type=Map)
    return LiveDoc(shard_id=shard_id, doc=doc, records=records)
