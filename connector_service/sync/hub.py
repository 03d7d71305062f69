"""Live sync in this process: the WebSocket clients of each document, and what they are sent.

Every committed change of a document (from a WebSocket, the HTTP diff endpoint, the JSON
records API, a pull, or another replica through the log) is published here. Changes are not
sent one by one: what a document collects within one short tick is merged into one Yjs update
and framed once, and the same bytes go to every client of the document but the one it came
from (when it came from a single one). Per-message fan-out in Python cannot keep up with
dozens of writing clients; a merged broadcast per tick costs one merge and one frame however
many updates it carries.

Each client has a bounded outgoing queue drained by its own task. A client that falls behind
by more than the bound is dropped (close code 1013, try again later; y-websocket reconnects
and resynchronizes with sync step 1), so a slow reader never makes the server buffer without
limit.

Awareness (cursors, presence) is relayed to a document's clients as it arrives, never
persisted; the hub remembers each client's latest states so a newcomer gets them at once, and
tells the others when a client leaves.

It also holds this process's memory of refused updates, per document and sender
(:mod:`connector_service.sync.refusals`): the edits refused lately, and the rollbacks they cost.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import Counter, Gauge
from pycrdt import Encoder, create_awareness_message, create_update_message, merge_updates

from connector_service.sync.lib0 import Decoder, Malformed
from connector_service.sync.refusals import Refusals, Rollbacks

log = structlog.get_logger(component="connector_service.sync.hub")

TICK_SECONDS = 0.015
MAX_QUEUED_MESSAGES = 256
MAX_QUEUED_BYTES = 8 * 1024 * 1024
MAX_AWARENESS_STATES = 1024  # remembered per document, for newcomers
MAX_AWARENESS_STATE_CHARS = 16 * 1024
MAX_AWARENESS_MESSAGE_BYTES = 64 * 1024  # a larger awareness message closes the connection
MAX_AWARENESS_STATES_PER_PEER = 4
MAX_AWARENESS_ROOM_CHARS = 1024 * 1024  # what a newcomer may be sent in one message

# close codes (RFC 6455 section 7.4.1), and ours: an update carrying a refused edit, and more
POLICY_VIOLATION, INTERNAL_ERROR, TRY_AGAIN_LATER, GOING_AWAY = 1008, 1011, 1013, 1001
REFUSED_EDIT = 4422
SHARD_SPLIT = 4410  # the shard was split: its records are in other shards (rooms) now
MAX_REASON_BYTES = 123  # of a close frame's reason, in UTF-8

CONNECTIONS = Gauge(
    "seedos_sync_ws_connections", "Open sync WebSocket connections.", multiprocess_mode="livesum"
)
BROADCASTS = Counter(
    "seedos_sync_ws_broadcasts_total", "Merged updates broadcast to a document's clients."
)
BROADCAST_UPDATES = Counter(
    "seedos_sync_ws_broadcast_updates_total", "Committed updates carried by those broadcasts."
)
DROPPED = Counter(
    "seedos_sync_ws_dropped_total", "Sync WebSocket clients closed by the server, by reason.",
    ["reason"],
)  # fmt: skip


class Peer:
    """One client's outgoing side: a bounded queue, drained by :meth:`run`. ``sender``: who
    is connected (the principal's subject), whose refusals are remembered."""

    def __init__(
        self, send: Any, *, sender: str = "", max_messages: int = MAX_QUEUED_MESSAGES,
        max_bytes: int = MAX_QUEUED_BYTES,
    ) -> None:  # fmt: skip
        self._send = send
        self.sender = sender
        self._queue: deque[bytes] = deque()
        self._bytes = 0
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._wake = asyncio.Event()
        self.failed = asyncio.Event()  # set when the server decides to close this client
        self.close_code: int | None = None
        self.close_reason = ""

    def push(self, message: bytes) -> None:
        if self.failed.is_set():
            return
        # bytes are counted beyond an empty queue: one large message (a big document's first
        # sync) always goes; a client that lets them pile up is dropped
        full = self._bytes + len(message) > self._max_bytes and bool(self._queue)
        if len(self._queue) >= self._max_messages or full:
            DROPPED.labels("slow").inc()
            self.fail(TRY_AGAIN_LATER, "too slow: reconnect")
            return
        self._queue.append(message)
        self._bytes += len(message)
        self._wake.set()

    def fail(self, code: int, reason: str) -> None:
        """Close this client (the connection's handler sees ``failed`` and closes)."""
        if not self.failed.is_set():
            self.close_code, self.close_reason = code, close_reason(reason)
            self._queue.clear()
            self._bytes = 0
            self.failed.set()

    async def run(self) -> None:
        while not self.failed.is_set():
            await self._wake.wait()
            self._wake.clear()
            while self._queue and not self.failed.is_set():
                message = self._queue.popleft()
                self._bytes -= len(message)
                await self._send(message)


@dataclass
class Room:
    """One document's clients, what they are about to be sent, and their awareness states."""

    peers: set[Peer] = field(default_factory=set)
    pending: list[bytes] = field(default_factory=list)
    sources: set[object | None] = field(default_factory=set)
    timer: asyncio.TimerHandle | None = None
    # awareness client id -> (clock, state as JSON text, the peer that owns it)
    awareness: dict[int, tuple[int, str, Peer]] = field(default_factory=dict)
    writer: Any = None  # the document's write batcher (writes.Writes), made on demand


SPLIT_REASON = "shard_split: its records are in other shards now, see GET sync/shards/for"


class MalformedAwareness(ValueError):
    pass


def close_reason(text: str) -> str:
    """``text`` cut to what a close frame holds (123 bytes of UTF-8), never within a
    character."""
    return text.encode()[:MAX_REASON_BYTES].decode(errors="ignore")


def read_awareness(update: bytes) -> list[tuple[int, int, str]]:
    """The entries (client id, clock, state JSON) of a y-protocols awareness update."""
    try:
        decoder = Decoder(update)
        entries = []
        for _ in range(decoder.read_var_uint()):
            client, clock = decoder.read_var_uint(), decoder.read_var_uint()
            entries.append((client, clock, decoder.read_var_string()))
    except Malformed:
        raise MalformedAwareness("not an awareness update") from None
    if decoder.length != 0:
        raise MalformedAwareness("trailing bytes after the awareness update")
    return entries


def write_awareness(entries: list[tuple[int, int, str]]) -> bytes:
    encoder = Encoder()
    encoder.write_var_uint(len(entries))
    for client, clock, state in entries:
        encoder.write_var_uint(client)
        encoder.write_var_uint(clock)
        encoder.write_var_string(state)
    return create_awareness_message(encoder.to_bytes())


class Hub:
    def __init__(self, *, tick_seconds: float = TICK_SECONDS) -> None:
        self.tick = tick_seconds
        self.rooms: dict[uuid.UUID, Room] = {}
        self.refusals = Refusals()
        self.rollbacks = Rollbacks()

    # --------------------------------------------------------------- membership

    def join(self, integration_id: uuid.UUID, peer: Peer) -> Room:
        room = self.rooms.get(integration_id)
        if room is None:
            room = self.rooms[integration_id] = Room()
        room.peers.add(peer)
        CONNECTIONS.inc()
        return room

    def leave(self, integration_id: uuid.UUID, peer: Peer) -> None:
        room = self.rooms.get(integration_id)
        if room is None or peer not in room.peers:
            return
        room.peers.discard(peer)
        CONNECTIONS.dec()
        gone = [(c, clock + 1, "null") for c, (clock, state, owner) in room.awareness.items()
                if owner is peer and state != "null"]  # fmt: skip
        room.awareness = {c: v for c, v in room.awareness.items() if v[2] is not peer}
        if gone:
            message = write_awareness(gone)
            for other in room.peers:
                other.push(message)
        if not room.peers:
            if room.timer is not None:
                room.timer.cancel()
            del self.rooms[integration_id]

    def watching(self, integration_id: uuid.UUID) -> bool:
        return integration_id in self.rooms

    def invalidate(self, integration_id: uuid.UUID) -> None:
        """The document was dropped from memory (a failed commit): its clients resynchronize."""
        room = self.rooms.get(integration_id)
        for peer in room.peers if room else ():
            peer.fail(TRY_AGAIN_LATER, "document reloaded: reconnect")

    def split(self, shard_id: uuid.UUID) -> None:
        """The shard was split: its clients move to the shards that hold its records now."""
        room = self.rooms.get(shard_id)
        for peer in room.peers if room else ():
            peer.fail(SHARD_SPLIT, SPLIT_REASON)

    def close_all(self, code: int = GOING_AWAY, reason: str = "server shutting down") -> None:
        for room in self.rooms.values():
            for peer in room.peers:
                peer.fail(code, reason)

    # --------------------------------------------------------------- document updates

    def publish(
        self, integration_id: uuid.UUID, update: bytes, source: object | None = None
    ) -> None:
        """A committed update: sent to the document's clients at the end of this tick."""
        room = self.rooms.get(integration_id)
        if room is None or not update:
            return
        room.pending.append(update)
        room.sources.add(source)
        if room.timer is None:
            loop = asyncio.get_running_loop()
            room.timer = loop.call_later(self.tick, self._flush, integration_id, room)

    def _flush(self, integration_id: uuid.UUID, room: Room) -> None:
        room.timer = None
        pending, sources = room.pending, room.sources
        room.pending, room.sources = [], set()
        if not pending or self.rooms.get(integration_id) is not room:
            return
        try:
            merged = pending[0] if len(pending) == 1 else merge_updates(*pending)
            messages = [create_update_message(merged)]
        except ValueError:  # never expected: each was committed as a valid update
            log.warning("sync_merge_failed", integration_id=str(integration_id))
            messages = [create_update_message(u) for u in pending]
        spare = next(iter(sources)) if len(sources) == 1 else None
        BROADCASTS.inc()
        BROADCAST_UPDATES.inc(len(pending))
        for peer in list(room.peers):
            if spare is None or peer is not spare:
                for message in messages:
                    peer.push(message)

    # --------------------------------------------------------------- awareness

    def awareness(self, room: Room, peer: Peer, message: bytes, update: bytes) -> None:
        """Relay a client's awareness message (raw) to the document's clients, the sender
        included as y-websocket's server does: a y-websocket client that hears nothing for
        30 s takes the connection for dead, and its own renewal (every 15 s) keeps it alive
        when it is alone. Remember the states, for newcomers."""
        if len(message) > MAX_AWARENESS_MESSAGE_BYTES:
            raise MalformedAwareness("awareness message too large")
        owned = sum(1 for _, _, owner in room.awareness.values() if owner is peer)
        remembered = sum(len(state) for _, state, _ in room.awareness.values())
        for client, clock, state in read_awareness(update):
            if state != "null":
                try:
                    json.loads(state)
                except ValueError:
                    raise MalformedAwareness("an awareness state is not JSON") from None
            known = room.awareness.get(client)
            if known is not None and clock < known[0]:
                continue
            if known is None and (len(room.awareness) >= MAX_AWARENESS_STATES
                                  or owned >= MAX_AWARENESS_STATES_PER_PEER):  # fmt: skip
                continue  # relayed, not remembered: memory stays bounded
            grows = len(state) - (len(known[1]) if known else 0)
            if (
                len(state) <= MAX_AWARENESS_STATE_CHARS
                and remembered + grows <= MAX_AWARENESS_ROOM_CHARS
            ):
                room.awareness[client] = (clock, state, peer)
                remembered += grows
                owned += known is None
        for other in room.peers:
            other.push(message)

    def awareness_states(self, room: Room) -> bytes | None:
        """One awareness message with every known live state (for a newcomer), if any."""
        entries = [(c, clock, state) for c, (clock, state, _) in room.awareness.items()
                   if state != "null"]  # fmt: skip
        return write_awareness(entries) if entries else None
