"""The per-document batching of WebSocket clients' writes.

Updates from the WebSocket clients of a document, once they passed the first check
(``service.check_update``), are handed to the document's :class:`Writes`, which applies and
commits whatever has queued up, in one append, while the previous commit ran. What the first
check cannot see (changes to existing records) is checked once applied: the layout per update,
the schemas once per batch for each record it changed, and that the document integrated all of
it (``service.check_integrated``); a refused update is undone (the document loaded again up to
the log, :meth:`DocStore.rollback`, counted against its sender in ``refusals.Rollbacks``), its
sender closed with 1008, and the rest of the batch committed, together with the batches of
the process's other rooms (:mod:`group`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pycrdt import merge_updates

from common.errors import ServiceUnavailable
from connector_service.manager.manager import Target
from connector_service.sync import service
from connector_service.sync.closes import close_for
from connector_service.sync.document import CLIENT, DELETED, LiveDoc
from connector_service.sync.group import GroupCommit
from connector_service.sync.hub import Peer
from connector_service.sync.layout import Shard
from connector_service.sync.lib0 import deleted_ranges
from connector_service.sync.refusals import Refusals, Rollbacks, refused_edit
from connector_service.sync.store import DocStore

MAX_ROLLBACKS = 4  # per batch; beyond, the document is reloaded and its clients resynchronize
CONTENT_REFUSALS = (service.InvalidRecords, service.InvalidRecord)


def merge_changes(into: dict[str, set[str] | None], changes: dict[str, set[str] | None]) -> None:
    for key, fields in changes.items():
        known = into.get(key, set())
        if fields is DELETED:
            into[key] = DELETED
        else:
            into[key] = set(fields) if known is DELETED else known | fields


class Writes:
    """Updates from the WebSocket clients of one document, committed a batch at a time."""

    def __init__(
        self, store: DocStore, target: Target, shard: Shard, refusals: Refusals,
        rollbacks: Rollbacks, group: GroupCommit,
    ) -> None:  # fmt: skip
        self.store = store
        self.group = group  # the commit shared with the process's other rooms
        self.target = target
        self.shard = shard
        self.refusals = refusals
        self.rollbacks = rollbacks
        self._inbox: list[tuple[bytes, Peer, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    def submit(self, update: bytes, peer: Peer) -> asyncio.Future[None]:
        """Resolved once the update is committed (or was already known)."""
        future = asyncio.get_running_loop().create_future()
        self._inbox.append((update, peer, future))
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="sync-ws-writes")
        return future

    async def _drain(self) -> None:
        try:
            while self._inbox:
                batch, self._inbox = self._inbox, []
                await self._commit(batch)
        finally:
            self._task = None
            for _, _, future in self._inbox:  # cancelled (shutdown): nobody will commit these
                if not future.done():
                    future.set_exception(ConnectionAbortedError("shutting down"))
            self._inbox = []

    async def _commit(self, batch: list[tuple[bytes, Peer, asyncio.Future[None]]]) -> None:
        refused: dict[int, Exception] = {}
        dirty = appended = False
        streams = service.streams(self.target)
        try:
            async with self.store.session(self.shard.id) as live:
                strict = False  # the schemas are checked once for the batch, until that fails
                rollbacks = 0
                while True:
                    dirty = True
                    outcome = self._apply(live, batch, refused, streams, strict=strict)
                    if outcome is not None:
                        break
                    # a refused update is in the document: undo the batch, go again without it
                    # (and from now on check each update, to know whose it is)
                    strict, rollbacks = True, rollbacks + 1
                    fresh = await self.store.rollback(live)
                    dirty = False
                    if fresh is None or rollbacks > MAX_ROLLBACKS:
                        raise _Poisoned
                    live = fresh
                applied, sources, changes = outcome
                if applied:
                    merged = applied[0] if len(applied) == 1 else merge_updates(*applied)
                    source = next(iter(sources)) if len(sources) == 1 else None
                    await self.group.append(live, merged, integration_id=self.target.id,
                                            changes=changes, source=source)  # fmt: skip
                    await self.store.tidy(live)
                dirty, appended = False, True
                for i in _first_per_peer(batch, refused):  # before they hear of it: they reconnect
                    remember_refusal(self.refusals, self.target, live, batch[i][0], refused[i],
                                     sender=batch[i][1].sender)  # fmt: skip
        except BaseException as exc:
            for i, refusal in refused.items():  # the sender hears why, before the room resyncs
                batch[i][1].fail(*close_for(refusal, self.target))
            if dirty and not appended:
                # memory must not keep what the log does not: reload, and the room resyncs
                self.store.forget(self.shard.id)
            failure: BaseException = (
                Reloaded("another update in this batch was refused: resynchronize")
                if isinstance(exc, _Poisoned) else exc
            )  # fmt: skip
            for i, (_, _, future) in enumerate(batch):
                if not future.done():
                    future.set_exception(refused.get(i, failure))
            if not isinstance(exc, Exception):
                raise  # cancelled: the drain's finally resolves what is left
            return
        for i, (_, peer, future) in enumerate(batch):
            if i in refused:
                peer.fail(*close_for(refused[i], self.target))
                future.set_exception(refused[i])
            elif not future.done():
                future.set_result(None)

    def _apply(
        self, live: LiveDoc, batch: list[tuple[bytes, Peer, asyncio.Future[None]]],
        refused: dict[int, Exception], streams: dict[str, Any], *, strict: bool,
    ) -> tuple[list[bytes], set[Peer], dict[str, set[str] | None]] | None:  # fmt: skip
        """Apply the batch but what was refused: the updates applied, their senders and the
        record changes, or None when the document now holds one to refuse (in ``refused``
        unless the batch's schema check found it and which one is not known yet)."""
        applied: list[bytes] = []
        sources: set[Peer] = set()
        changes: dict[str, set[str] | None] = {}
        blocked: dict[Peer, int] = {}  # a sender's updates after its refused one build on it
        for i, (update, peer, _) in enumerate(batch):
            if i in refused:
                blocked.setdefault(peer, i)
                continue
            if peer in blocked or peer.failed.is_set():  # closed: nothing of it is taken
                refused[i] = refused.get(blocked.get(peer, -1)) or Reloaded("closed")
                continue
            try:
                done, changed = live.apply(update, CLIENT)
            except ValueError:  # decoding fails before anything is integrated
                refused[i] = service.MalformedUpdate("the update is not a Yjs update")
                continue
            try:  # what the scratch check could not see (changes to existing records), and
                # parts kept aside for items the document lacks (even when nothing integrated)
                service.check_client_update(live, update, changed, streams, schemas=strict)
            except (service.IncompleteUpdate, *CONTENT_REFUSALS) as exc:
                refused[i] = exc
                self.rollbacks.count(self.target.id, peer.sender)
                return None
            if not done:
                continue
            applied.append(done)
            sources.add(peer)
            merge_changes(changes, changed)
        if not strict and changes:
            try:  # each record the batch changed, once, as the batch left it
                service.check_schemas(live.records, service.changed_records(changes), streams)
            except service.InvalidRecord:
                return None
        return applied, sources, changes


def _first_per_peer(
    batch: list[tuple[bytes, Peer, Any]], refused: dict[int, Exception]
) -> list[int]:
    """The refused updates whose content was refused, the first of each sender."""
    seen: set[Peer] = set()
    out = []
    for i in sorted(refused):
        peer = batch[i][1]
        if isinstance(refused[i], CONTENT_REFUSALS) and peer not in seen:
            seen.add(peer)
            out.append(i)
    return out


def remember_refusal(
    refusals: Refusals, target: Target, live: LiveDoc, update: bytes, refusal: Exception,
    *, sender: str,
) -> None:  # fmt: skip
    """Know this refused update of ``sender`` again when it comes back
    (:class:`refusals.Refusals`): by what it holds beyond ``live``, the document without it."""
    reason = close_for(refusal, target)[1]
    try:
        state = live.state_vector()
        here = deleted_ranges(live.doc.get_update(state))  # the document's whole delete set
        refusals.remember(live.shard_id, sender, refused_edit(reason, update, state, here))
    except ValueError:
        return


class _Poisoned(Exception):
    """A refused update could not be undone: nothing of the batch may be committed."""


class Reloaded(ServiceUnavailable):
    code, title = "document_reloaded", "The document was reloaded"
