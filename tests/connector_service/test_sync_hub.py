"""The live-sync hub in one process: updates of a tick merged into one broadcast, the sender
spared its echo, slow clients dropped instead of buffered, awareness relayed and cleaned up."""

from __future__ import annotations

import asyncio
import uuid

from pycrdt import Doc, Map, YMessageType, YSyncMessageType, read_message

from connector_service.sync.hub import TRY_AGAIN_LATER, Hub, Peer, read_awareness, write_awareness


def _updates(n: int) -> tuple[Doc, list[bytes]]:
    doc = Doc()
    records = doc.get("records", type=Map)
    out = []
    for i in range(n):
        before = doc.get_state()
        records[f"contacts/{i}"] = Map({"n": str(i)})
        out.append(doc.get_update(before))
    return doc, out


class Sink:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def __call__(self, message: bytes) -> None:
        self.sent.append(message)


async def _drain(*peers: Peer) -> None:
    tasks = [asyncio.create_task(p.run()) for p in peers]
    await asyncio.sleep(0.05)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_tick_of_updates_is_one_merged_broadcast_without_echo():
    hub = Hub(tick_seconds=0.01)
    doc_id = uuid.uuid4()
    sinks = [Sink(), Sink(), Sink()]
    peers = [Peer(s) for s in sinks]
    for p in peers:
        hub.join(doc_id, p)
    source, updates = _updates(5)
    for u in updates:
        hub.publish(doc_id, u, source=peers[0])
    await asyncio.sleep(0.03)
    await _drain(*peers)
    assert sinks[0].sent == []  # the only source of the tick: no echo
    for sink in sinks[1:]:
        assert len(sink.sent) == 1
        message = sink.sent[0]
        assert message[:2] == bytes([YMessageType.SYNC, YSyncMessageType.SYNC_UPDATE])
        replica = Doc()
        replica.apply_update(read_message(message[2:]))
        assert replica.get("records", type=Map).to_py() == source.get("records", type=Map).to_py()
    # two sources in one tick: everyone gets the merge (the echo is harmless in Yjs)
    _, more = _updates(2)
    hub.publish(doc_id, more[0], source=peers[0])
    hub.publish(doc_id, more[1], source=peers[1])
    await asyncio.sleep(0.03)
    await _drain(*peers)
    assert [len(s.sent) for s in sinks] == [1, 2, 2]
    # nobody watching: nothing kept
    hub.publish(uuid.uuid4(), more[0])
    assert set(hub.rooms) == {doc_id}


async def test_a_slow_client_is_dropped_not_buffered():
    hub = Hub(tick_seconds=0.001)
    doc_id = uuid.uuid4()
    stuck = asyncio.Event()

    async def never(_message: bytes) -> None:
        await stuck.wait()

    slow = Peer(never, max_messages=4, max_bytes=1 << 20)
    fast_sink = Sink()
    fast = Peer(fast_sink, max_messages=4)
    hub.join(doc_id, slow)
    hub.join(doc_id, fast)
    runners = [asyncio.create_task(slow.run()), asyncio.create_task(fast.run())]
    _, updates = _updates(10)
    for u in updates:
        hub.publish(doc_id, u)
        await asyncio.sleep(0.005)  # one tick each
    assert slow.failed.is_set() and slow.close_code == TRY_AGAIN_LATER
    assert not fast.failed.is_set() and len(fast_sink.sent) == 10
    assert len(slow._queue) == 0  # what was queued for it is let go
    for t in runners:
        t.cancel()
    await asyncio.gather(*runners, return_exceptions=True)
    # a byte bound too, counted beyond an empty queue: one large message always goes (a big
    # document's first sync), more behind it do not
    big = Peer(never, max_messages=100, max_bytes=10)
    big.push(b"x" * 11)
    assert not big.failed.is_set()
    big.push(b"y")
    assert big.failed.is_set() and big.close_code == TRY_AGAIN_LATER


async def test_awareness_is_relayed_remembered_and_cleared_when_a_client_leaves():
    hub = Hub()
    doc_id = uuid.uuid4()
    a_sink, b_sink = Sink(), Sink()
    a, b = Peer(a_sink), Peer(b_sink)
    room = hub.join(doc_id, a)
    hub.join(doc_id, b)
    message = write_awareness([(7, 1, '{"user":"ada"}')])
    hub.awareness(room, a, message, read_message(message[1:]))
    await _drain(a, b)
    assert a_sink.sent == [message] and b_sink.sent == [message]
    assert read_awareness(read_message(hub.awareness_states(room)[1:])) == [
        (7, 1, '{"user":"ada"}')
    ]
    hub.leave(doc_id, a)
    await _drain(b)
    assert read_awareness(read_message(b_sink.sent[-1][1:])) == [(7, 2, "null")]
    assert hub.awareness_states(room) is None
    hub.leave(doc_id, b)
    assert not hub.watching(doc_id)
