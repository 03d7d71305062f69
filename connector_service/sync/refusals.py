"""What this process remembers of the Yjs updates it refused, per document and sender.

A sender is the authenticated principal (its subject: an API key, a user), never a Yjs client
id: those are chosen by whoever writes the update, and anybody who can read the document sees
them in its state vector. So one sender's refusals never bear on another's updates.

:class:`Refusals`: a y-websocket client keeps an edit the server refused in its own document
and sends it again in its sync step 2 on every reconnect. The edit is remembered (its items as
clock ranges per client id, and the items it deleted that the document had not) so that this
comes back quietly, with no close and so no reconnect loop, but only when the update carries
nothing else (:meth:`Refusals.recall`).

:class:`Rollbacks`: a refusal found once an update is applied costs a reload of the document
(:meth:`DocStore.rollback`) under its lock. A sender may cost at most :data:`ROLLBACKS` of
those a minute per document; beyond, its updates are refused before being applied until the
minute has passed (HTTP 429 with Retry-After, WebSocket 1013).

Both are bounded in number and time, and held by each process for itself.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TTLCache
from pycrdt import get_update

from connector_service.sync.lib0 import Ranges, encode_state_vector, read_update, without

Sender = tuple[uuid.UUID, str]  # the document, the principal's subject

REFUSALS_SECONDS = 15 * 60  # how long a refused edit is recognized
MAX_SENDERS = 4096  # (document, sender) pairs remembered
MAX_EDITS = 16  # refused edits remembered per sender and document
MAX_RANGES = 1024  # clock ranges per refused edit; beyond, it is not remembered
ROLLBACKS, ROLLBACK_SECONDS = 5, 60.0


@dataclass(frozen=True)
class Refused:
    """One refused edit: why, the items it added beyond the document (per client id, clock
    ranges) and the items of the document it deleted."""

    reason: str
    items: Ranges
    deleted: Ranges


@dataclass(frozen=True)
class Recalled:
    """An update that carries a refused edit of its sender: ``more`` if it carries anything
    else (items or deletions beyond the refused edits and what the document holds)."""

    reason: str
    more: bool


def normalized(ranges: Ranges) -> Ranges:
    """Sorted, overlapping and touching ranges joined, clients without any dropped."""
    out: Ranges = {}
    for client, found in ranges.items():
        joined: list[tuple[int, int]] = []
        for start, end in sorted(r for r in found if r[1] > r[0]):
            if joined and start <= joined[-1][1]:
                joined[-1] = (joined[-1][0], max(end, joined[-1][1]))
            else:
                joined.append((start, end))
        if joined:
            out[client] = joined
    return out


def union(*many: Ranges) -> Ranges:
    out: Ranges = {}
    for ranges in many:
        for client, found in ranges.items():
            out.setdefault(client, []).extend(found)
    return normalized(out)


def refused_edit(reason: str, update: bytes, state_vector: bytes, deleted: Ranges) -> Refused:
    """What ``update`` holds beyond a document (its ``state_vector``, its delete set
    ``deleted``): the edit to remember. ValueError if the update is malformed."""
    items, deletes = read_update(get_update(update, state_vector))
    return Refused(reason, normalized(items), normalized(without(deletes, deleted)))


class Refusals:
    def __init__(self, *, seconds: float = REFUSALS_SECONDS) -> None:
        self._edits: TTLCache[Sender, tuple[Refused, ...]] = TTLCache(MAX_SENDERS, seconds)

    def remember(self, integration_id: uuid.UUID, sender: str, refused: Refused) -> None:
        size = sum(len(r) for r in (*refused.items.values(), *refused.deleted.values()))
        if size > MAX_RANGES or not (refused.items or refused.deleted):
            return  # not recognizable: a step 2 holding it is checked again, and refused again
        key = (integration_id, sender)
        self._edits[key] = (*self._edits.get(key, ())[1 - MAX_EDITS :], refused)  # time restarts

    def known(self, integration_id: uuid.UUID, sender: str) -> bool:
        return (integration_id, sender) in self._edits

    def recall(
        self, integration_id: uuid.UUID, sender: str, update: bytes, *, state: dict[int, int],
        deleted: Callable[[], Ranges],
    ) -> Recalled | None:  # fmt: skip
        """Whether ``update`` from ``sender`` carries one of its refused edits, given what the
        document holds (its ``state`` vector, and its delete set, asked only when needed).

        The rule: the update's items beyond the document are looked at. If some are of a
        client id of a refused edit, from that edit's first clock on, the update carries it
        (the refused items, or later ones that build on them). It adds nothing else when all
        those items lie within the refused edits' ranges, and every deletion in it that the
        document lacks is one of the refused edits' deletions or of their items: then it is
        let be. Otherwise the rest cannot be taken without the refused part: ``more``. (Any of
        the sender's refused edits counts there: a document may hold several.)

        An edit that only deletes leaves the state vector as it was: it is recalled only by
        an update without items beyond the document whose deletions the document lacks are
        exactly the refused edit's (or all of the sender's deletion-only ones together), never
        by an overlap (a deletion of the whole record is an edit of its own). An update
        holding those and more is checked as any other: refused again if the refused
        deletion still breaks the schema, taken if not."""
        edits = self._edits.get((integration_id, sender))
        if not edits:
            return None
        try:
            items, deletes = read_update(get_update(update, encode_state_vector(state)))
        except ValueError:  # malformed: its own checks say so
            return None
        items = normalized(items)
        hit = [edit for edit in edits if _touches(items, edit.items)]
        refused_items = union(*(edit.items for edit in edits))
        if hit:
            covered = union(refused_items, *(edit.deleted for edit in edits))
            more = bool(
                normalized(without(items, refused_items))
                or normalized(without(without(deletes, deleted()), covered))
            )
            return Recalled(hit[0].reason, more)
        if items:
            return None
        lacking = normalized(without(deletes, deleted()))
        only = [edit for edit in edits if not edit.items]
        for edit in only:
            if lacking in (edit.deleted, union(*(e.deleted for e in only))):
                return Recalled(edit.reason, False)
        return None


def _touches(items: Ranges, refused: Ranges) -> bool:
    """Items of a refused edit's client ids, from where the edit starts on."""
    return any(
        end > ranges[0][0] for client, ranges in refused.items() for _, end in items.get(client, ())
    )


class Rollbacks:
    """Refusals that cost a rollback, per document and sender, over the last minute."""

    def __init__(
        self, *, limit: int = ROLLBACKS, seconds: float = ROLLBACK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self._limit, self._seconds, self._clock = limit, seconds, clock
        self._times: TTLCache[Sender, deque[float]] = TTLCache(MAX_SENDERS, seconds, timer=clock)

    def count(self, integration_id: uuid.UUID, sender: str) -> None:
        key = (integration_id, sender)
        times = self._times.get(key) or deque(maxlen=self._limit)
        times.append(self._clock())
        self._times[key] = times

    def wait(self, integration_id: uuid.UUID, sender: str) -> float:
        """Seconds before an update of ``sender`` may be applied again (0: now)."""
        times = self._times.get((integration_id, sender))
        if times is None or len(times) < self._limit:
            return 0.0
        return max(0.0, times[0] + self._seconds - self._clock())
