"""One y-websocket connection to a shard's document (its room).

The protocol is y-websocket's (y-protocols): every message is a var-uint type, then

- sync (0): a var-uint sub-type and a var-uint8-array: step 1 carries a state vector and is
  answered with step 2 (the update the sender lacks); step 2 and update (2) carry updates;
- awareness (1): an awareness update, relayed to the document's clients (hub.py);
- query awareness (3): answered with the awareness states known; other types are ignored.

On connect the server sends its step 1 (and the awareness states it knows); the client
answers with step 2 and sends its own step 1. Updates from clients are checked first
(``service.check_update``: a malformed update, or one that breaks the records layout or
creates a record its stream's schema refuses, closes the connection with 1008 and leaves the
document untouched), then handed to the document's :class:`writes.Writes`, which applies
and commits them a batch at a time and checks once applied what the first check cannot see.
A connection may have :data:`MAX_IN_FLIGHT` updates waiting for
their commit; beyond that it is not read from, so TCP pushes back on a client that writes
faster than the database commits.

A refused edit stays in the client's document, and y-websocket sends it again in its step 2
on every reconnect. This sender's refused edits are known again (``refusals.Refusals``, per
document and principal, never per Yjs client id): an update that carries one and nothing else
is let be and the connection stays open (closing it would only start the next reconnect); one
that carries one and more (a later edit builds on it) cannot be taken: closed with 4422. A
sender whose updates cost too many rollbacks lately is closed with 1013 before its next one is
applied (``refusals.Rollbacks``).

Viewers (read-only role) receive everything; an update from them closes the connection with
1008 ``read-only``, except their step-2 handshake reply, which is not applied and is only
refused if it carries changes the server lacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools

import structlog
from pycrdt import YMessageType, YSyncMessageType, create_sync_message, get_state, write_message
from starlette.websockets import WebSocket, WebSocketState

from connector_service.integrations.service import IntegrationNotFound
from connector_service.manager.manager import Target
from connector_service.sync import service
from connector_service.sync.closes import ProtocolViolation, RefusedEdit, TooBig, close_for
from connector_service.sync.group import GroupCommit
from connector_service.sync.hub import (
    POLICY_VIOLATION,
    SHARD_SPLIT,
    SPLIT_REASON,
    TRY_AGAIN_LATER,
    Hub,
    MalformedAwareness,
    Peer,
    Room,
)
from connector_service.sync.layout import Shard, ShardSplit
from connector_service.sync.lib0 import Decoder, Malformed, decode_state_vector, deleted_ranges
from connector_service.sync.refusals import Recalled
from connector_service.sync.store import DocStore
from connector_service.sync.writes import CONTENT_REFUSALS, Writes, remember_refusal

log = structlog.get_logger(component="connector_service.sync.ws")

QUERY_AWARENESS = 3
MAX_IN_FLIGHT = 32
MAX_IN_FLIGHT_BYTES = 32 * 1024 * 1024  # updates of one connection waiting for their commit
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # a larger message closes the connection (1009)
EMPTY_UPDATE = b"\x00\x00"


def step2_message(update: bytes) -> bytes:
    return bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP2]) + write_message(update)


class Connection:
    def __init__(
        self, websocket: WebSocket, *, hub: Hub, store: DocStore, target: Target, shard: Shard,
        writable: bool, sender: str, group: GroupCommit,
    ) -> None:  # fmt: skip
        self.group = group
        self.websocket = websocket
        self.shard = shard  # the document: the room is the shard's
        self.sender = sender  # the principal's subject: whose refusals are whose
        self.hub = hub
        self.store = store
        self.target = target
        self.writable = writable
        self.streams = service.streams(target)
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._bytes_in_flight = 0
        self._drained = asyncio.Event()

    async def serve(self) -> None:
        """Run the connection (already accepted) until either side closes it."""
        peer = Peer(self.websocket.send_bytes, sender=self.sender)
        room = self.hub.join(self.shard.id, peer)  # before the first read: nothing is missed
        try:
            try:
                async with self.store.session(self.shard.id) as live:
                    peer.push(create_sync_message(live.doc))
            except IntegrationNotFound:  # uninstalled meanwhile: do not come back
                peer.fail(POLICY_VIOLATION, "integration_not_found")
            except ShardSplit:
                peer.fail(SHARD_SPLIT, SPLIT_REASON)
            except Exception as exc:
                log.warning("sync_ws_load_failed", integration_id=str(self.target.id),
                            error=type(exc).__name__)  # fmt: skip
                peer.fail(TRY_AGAIN_LATER, "the document cannot be loaded now")
            if states := self.hub.awareness_states(room):
                peer.push(states)
            code, reason = await self._run(peer, room)
        finally:
            self.hub.leave(self.shard.id, peer)
            if not self.hub.watching(self.shard.id):
                self.store.unpin(self.shard.id)
        if code is not None and self.websocket.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.websocket.close(code, reason), 2)

    async def _run(self, peer: Peer, room: Room) -> tuple[int | None, str]:
        reader = asyncio.create_task(self._read(peer, room))
        writer = asyncio.create_task(peer.run())
        failed = asyncio.create_task(peer.failed.wait())
        tasks = (reader, writer, failed)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if peer.failed.is_set():
            return peer.close_code, peer.close_reason
        if reader.done() and not reader.cancelled() and (exc := reader.exception()) is not None:
            return close_for(exc, self.target)
        return None, ""  # the client left, or sending to it failed: nothing more to say

    async def _read(self, peer: Peer, room: Room) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                raise ProtocolViolation("y-websocket messages are binary")
            if len(data) > MAX_MESSAGE_BYTES:
                raise TooBig(f"messages are at most {MAX_MESSAGE_BYTES} bytes")
            await self._handle(data, peer, room)

    async def _handle(self, data: bytes, peer: Peer, room: Room) -> None:
        try:
            decoder = Decoder(data)
            kind = decoder.read_var_uint()
            if kind == YMessageType.SYNC:
                sub, payload = decoder.read_var_uint(), decoder.read_message()
            elif kind == YMessageType.AWARENESS:
                sub, payload = -1, decoder.read_message()
            elif kind == QUERY_AWARENESS:
                if states := self.hub.awareness_states(room):
                    peer.push(states)
                return
            else:
                return  # auth (2) and types this server does not know: ignored, as y-websocket does
        except Malformed:
            raise ProtocolViolation("not a y-websocket message") from None
        if payload is None or decoder.length != 0:
            raise ProtocolViolation("not a y-websocket message (length)")
        if kind == YMessageType.AWARENESS:
            try:
                self.hub.awareness(room, peer, data, payload)
            except MalformedAwareness as exc:
                raise ProtocolViolation(str(exc)) from None
        elif sub == YSyncMessageType.SYNC_STEP1:
            async with self.store.session(self.shard.id) as live:
                try:
                    diff = live.diff(payload)
                except ValueError:
                    raise ProtocolViolation("malformed state vector") from None
            peer.push(step2_message(diff))
        elif sub in (YSyncMessageType.SYNC_STEP2, YSyncMessageType.SYNC_UPDATE):
            await self._update(payload, peer, room, handshake=sub == YSyncMessageType.SYNC_STEP2)
        else:
            raise ProtocolViolation("unknown sync message type")

    async def _update(self, update: bytes, peer: Peer, room: Room, *, handshake: bool) -> None:
        if update == EMPTY_UPDATE:
            return
        if not self.writable:
            if handshake and not await self._adds_to_document(update):
                return
            raise ProtocolViolation("read-only: this connection may not change the document")
        if self.hub.refusals.known(self.shard.id, self.sender):
            recalled = await self._recall(update)
            if recalled is not None and recalled.more:  # the rest cannot be taken without it
                raise RefusedEdit(f"refused edit: {recalled.reason}")
            if recalled is not None:  # its refused edit again and nothing else (a step 2 on
                return  # each reconnect): let be, no close, so no reconnect loop
        try:
            service.check_update(update, self.streams, self.shard)  # 1008, the document untouched
        except CONTENT_REFUSALS as exc:
            try:
                async with self.store.session(self.shard.id) as live:
                    remember_refusal(self.hub.refusals, self.target, live, update, exc,
                                     sender=self.sender)  # fmt: skip
            except Exception as failure:  # refused all the same; known again next time
                log.warning("sync_ws_refusal_not_remembered", integration_id=str(self.target.id),
                            error=type(failure).__name__)  # fmt: skip
            raise
        service.check_before_applying(self.hub.rollbacks, self.target, self.sender)  # 1013
        await self._slots.acquire()
        while self._bytes_in_flight and self._bytes_in_flight + len(update) > MAX_IN_FLIGHT_BYTES:
            self._drained.clear()
            await self._drained.wait()  # not read from meanwhile: TCP pushes back
        self._bytes_in_flight += len(update)
        if room.writer is None:
            room.writer = Writes(self.store, self.target, self.shard, self.hub.refusals,
                                 self.hub.rollbacks, self.group)  # fmt: skip
        future = room.writer.submit(update, peer)
        future.add_done_callback(functools.partial(self._committed, peer, len(update)))

    def _committed(self, peer: Peer, size: int, future: asyncio.Future[None]) -> None:
        self._slots.release()
        self._bytes_in_flight -= size
        self._drained.set()
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            code, reason = close_for(exc, self.target)
            peer.fail(code, reason)

    async def _recall(self, update: bytes) -> Recalled | None:
        """Whether ``update`` carries one of this sender's refused edits (and more)."""
        async with self.store.session(self.shard.id) as live:
            state = live.state_vector()
            return self.hub.refusals.recall(
                self.shard.id, self.sender, update, state=decode_state_vector(state),
                deleted=lambda: deleted_ranges(live.doc.get_update(state)),
            )  # fmt: skip

    async def _adds_to_document(self, update: bytes) -> bool:
        """Whether an update holds items the document lacks (its delete set is not looked at)."""
        try:
            theirs = decode_state_vector(get_state(update))
        except (ValueError, RuntimeError, IndexError):
            raise ProtocolViolation("malformed update") from None
        async with self.store.session(self.shard.id) as live:
            ours = decode_state_vector(live.state_vector())
        return any(clock > ours.get(client, 0) for client, clock in theirs.items())
