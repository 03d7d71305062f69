"""How the delivery worker records what it did (in process, on the session's database): an
answer in binary (NUL bytes, invalid UTF-8) is stored as text PostgreSQL takes and the other
tenants' results of the batch are recorded with it; a result the database refuses anyway sinks
only itself; an attempt is counted when it is recorded, not when its row is claimed, so a row
claimed and not sent (no room before its deadline, or shutdown) is released with no attempt
used; a result whose lease has passed to another claim changes nothing; expired events are
swept in batches.

Rows are published and claimed in one transaction (rows of others the claim took released in
it), so no other worker of the test session sees them before this one holds their lease."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from aiohttp import web
from standardwebhooks import Webhook

from common.crypto import KeyRing
from common.endpoints import EndpointPolicy, parse_networks
from connector_service.outbound import events, queue, repository, service, worker
from connector_service.settings import ConnectorServiceSettings
from tests.conftest import TEST_KEY_RING
from tests.support import connected, free_port, make_tenant

RING = KeyRing.from_json(TEST_KEY_RING)
LOOPBACK = EndpointPolicy(parse_networks("127.0.0.0/8"), name="test")


@asynccontextmanager
async def answering(body: bytes) -> AsyncIterator[str]:
    """A receiver on loopback answering 200 with ``body``; yields its URL."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200, body=body, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


def _deliverer(database) -> worker.Deliverer:
    settings = ConnectorServiceSettings(
        webhook_timeout_seconds=2, smtp_timeout_seconds=2,
        webhook_retry_schedule_seconds=[60, 60],
    )  # fmt: skip
    return worker.Deliverer(database, RING, policy=LOOPBACK, settings=settings)


async def _claimed(dsn: str, urls: list[str]) -> list:
    """One new tenant per URL with an endpoint there, a sync.finished published to each and
    the deliveries claimed (leased to the caller), committed together."""
    tenants = [await make_tenant(dsn) for _ in urls]
    async with connected(dsn) as conn, conn.transaction():
        mine = []
        for t, url in zip(tenants, urls, strict=True):
            ep, _ = await service.create(conn, RING, LOOPBACK, tenant_id=t.tenant_id, actor="t",
                                         url=url, event_types=[events.SYNC_FINISHED],
                                         description="")  # fmt: skip
            await events.publish(conn, tenant_id=t.tenant_id, type=events.SYNC_FINISHED,
                                 data={"n": 1})  # fmt: skip
            mine.append(ep["id"])
        await conn.execute("UPDATE outbound_deliveries SET next_at = now() - interval '1 day'"
                           " WHERE endpoint_id = ANY ($1::uuid[])", mine)  # fmt: skip
        rows = await queue.claim(conn, limit=500, lease_seconds=60, per_target=500)
        await queue.release(conn, [(r["id"], r["lease_id"]) for r in rows
                                   if r["endpoint_id"] not in mine])  # fmt: skip
    rows = [r for r in rows if r["endpoint_id"] in mine]
    assert sorted(r["endpoint_id"] for r in rows) == sorted(mine)
    return sorted(rows, key=lambda r: mine.index(r["endpoint_id"]))


async def _delivery(dsn: str, delivery_id: uuid.UUID) -> dict:
    async with connected(dsn) as conn:
        row = await conn.fetchrow("SELECT state, attempts, lease_id, next_at FROM"
                                  " outbound_deliveries WHERE id = $1", delivery_id)  # fmt: skip
        logged = await conn.fetch("SELECT ok, status, response, error FROM outbound_attempts"
                                  " WHERE delivery_id = $1 ORDER BY id", delivery_id)  # fmt: skip
    return {**dict(row), "log": [dict(a) for a in logged]}


async def _signers(dsn: str, rows: list) -> dict:
    async with connected(dsn) as conn:
        secrets = await repository.signing_secrets(conn, [r["endpoint_id"] for r in rows])
    return {s["endpoint_id"]: [Webhook(service.open_secret(RING, s))] for s in secrets}


async def _send(d: worker.Deliverer, row, url: str, signers: dict) -> dict:
    result = await d._post(row, b'{"type":"sync.finished"}', url, signers[row["endpoint_id"]])
    return {**result, "lease_id": row["lease_id"]}


async def test_a_binary_answer_is_stored_and_sinks_no_one_elses_result(dsn, database):
    d = _deliverer(database)
    binary = b"\x00\xff\xfe\x00 not text \x80" * 100  # NUL bytes, invalid UTF-8, > 1 KiB
    try:
        async with answering(binary) as odd, answering(b"ok") as fine:
            rows = await _claimed(dsn, [odd, fine])
            signers = await _signers(dsn, rows)
            results = [
                await _send(d, r, url, signers) for r, url in zip(rows, [odd, fine], strict=True)
            ]
        assert [r["status"] for r in results] == [200, 200]
        await d._record(results)
    finally:
        await d.aclose()
    bad, good = [await _delivery(dsn, r["id"]) for r in rows]
    assert good["state"] == "delivered" and good["log"] == [
        {"ok": True, "status": 200, "response": "ok", "error": None}]  # fmt: skip
    assert bad["state"] == "delivered" and bad["attempts"] == 1 and bad["lease_id"] is None
    (attempt,) = bad["log"]
    assert attempt["response"].startswith("\ufffd\ufffd\ufffd\ufffd not text")
    assert len(attempt["response"].encode()) <= queue.RESPONSE_BYTES


async def test_queue_stores_what_postgresql_would_refuse(dsn):
    (row,) = await _claimed(dsn, ["http://127.0.0.1:9/hook"])
    async with connected(dsn) as conn:
        held = await queue.record(conn, [{
            "id": row["id"], "lease_id": row["lease_id"], "ok": False, "status": 500,
            "duration_ms": 1.0, "response": "a\x00b\ud800" + "é" * 1000,
            "error": "x\x00" * 300, "state": "pending",
            "next_at": datetime.now(UTC) + timedelta(hours=1),
        }])  # fmt: skip
    assert held == {row["id"]}
    (attempt,) = (await _delivery(dsn, row["id"]))["log"]
    assert attempt["response"].startswith("a\ufffdb?éé")
    assert len(attempt["response"].encode()) <= 1024 and len(attempt["error"]) <= 200


async def test_a_refused_result_sinks_only_itself(dsn, database):
    d = _deliverer(database)
    rows = await _claimed(dsn, ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"])
    results = [{"id": r["id"], "lease_id": r["lease_id"], "endpoint_id": r["endpoint_id"],
                "ok": True, "status": 200, "duration_ms": 3.0, "response": "fine",
                "error": None, "state": "delivered"} for r in rows]  # fmt: skip
    results[0]["status"] = 2**40  # no int4: the batch's statement is refused
    try:
        await d._record(results)
    finally:
        await d.aclose()
    refused, fine = [await _delivery(dsn, r["id"]) for r in rows]
    assert fine["state"] == "delivered" and fine["log"][0]["response"] == "fine"
    assert refused["state"] == "delivered" and refused["log"] == [
        {"ok": True, "status": None, "response": None, "error": "unrecordable_result"}]  # fmt: skip


async def test_attempts_count_when_recorded_and_a_late_result_changes_nothing(dsn):
    (row,) = await _claimed(dsn, ["http://127.0.0.1:9/hook"])
    assert row["attempts"] == 1  # the attempt about to be made
    assert (await _delivery(dsn, row["id"]))["attempts"] == 0  # none made yet
    async with connected(dsn) as conn, conn.transaction():
        # its lease runs out, and another claim takes the row
        await conn.execute("UPDATE outbound_deliveries SET next_at = now() - interval '1 day'"
                           " WHERE id = $1", row["id"])  # fmt: skip
        claimed = await queue.claim(conn, limit=500, lease_seconds=60, per_target=500)
        again = [r for r in claimed if r["id"] == row["id"]]
        await queue.release(conn, [(r["id"], r["lease_id"]) for r in claimed
                                   if r["id"] != row["id"]])  # others' rows: as they were  # fmt: skip
        assert len(again) == 1 and again[0]["lease_id"] != row["lease_id"]
        assert again[0]["attempts"] == 1  # the first claim used no attempt up
    failed = {"id": row["id"], "ok": False, "status": 500, "duration_ms": 1.0,
              "response": "late", "error": "http_status", "state": "failed"}  # fmt: skip
    async with connected(dsn) as conn:
        # the first claim's result comes late: it may not overwrite the row the second holds
        assert await queue.record(conn, [{**failed, "lease_id": row["lease_id"]}]) == set()
        after = await _delivery(dsn, row["id"])
        assert after["state"] == "pending" and after["attempts"] == 0 and after["log"] == []
        assert after["lease_id"] == again[0]["lease_id"]
        held = await queue.record(conn, [{**failed, "lease_id": again[0]["lease_id"],
                                          "state": "pending",
                                          "next_at": datetime.now(UTC)}])  # fmt: skip
    assert held == {row["id"]}
    after = await _delivery(dsn, row["id"])
    assert after["attempts"] == 1 and after["lease_id"] is None and len(after["log"]) == 1


async def test_rows_claimed_and_not_sent_use_no_attempt(dsn, database):
    d = _deliverer(database)
    late, cut = await _claimed(dsn, ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"])
    sent: list[uuid.UUID] = []

    async def send(row) -> dict:
        sent.append(row["id"])
        await asyncio.sleep(3600)  # still sending at shutdown
        return {}

    now = time.monotonic()
    # claimed longer ago than its lease allows to finish a send: not sent
    d._start(late["endpoint_id"], late, lambda: send(late), now - d._lease, 2)
    d._start(cut["endpoint_id"], cut, lambda: send(cut), now, 2)
    deadline = time.monotonic() + 5
    while sent != [cut["id"]]:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    recorder = asyncio.create_task(asyncio.sleep(3600))
    try:
        await d._stop(recorder)  # shutdown: the send in flight is cancelled
    finally:
        await d.aclose()
    for row in (late, cut):
        after = await _delivery(dsn, row["id"])
        assert after == {**after, "state": "pending", "attempts": 0, "lease_id": None, "log": []}
        assert after["next_at"] <= datetime.now(UTC)  # due again now, not after its lease


async def test_expired_events_are_swept_in_batches(dsn):
    t = await make_tenant(dsn)
    async with connected(dsn) as conn:
        async with conn.transaction():
            await service.create(conn, RING, LOOPBACK, tenant_id=t.tenant_id, actor="t",
                                 url="http://127.0.0.1:9/hook",
                                 event_types=[events.SYNC_FINISHED], description="")  # fmt: skip
            ids = [await events.publish(conn, tenant_id=t.tenant_id, type=events.SYNC_FINISHED,
                                        data={"n": i}) for i in range(7)]  # fmt: skip
            await conn.execute("UPDATE outbound_events SET created_at = '2001-01-01'"
                               " WHERE id = ANY ($1::uuid[])", ids)  # fmt: skip
            await conn.execute("UPDATE outbound_deliveries SET state = 'delivered'"
                               " WHERE event_id = ANY ($1::uuid[]) AND event_id <> $2",
                               ids, ids[0])  # fmt: skip
        gone = await queue.sweep(conn, older_than=datetime(2002, 1, 1, tzinfo=UTC), batch=2)
        left = await conn.fetch("SELECT id FROM outbound_events WHERE id = ANY ($1::uuid[])", ids)
    # every expired event but the one still pending; other tests' events are not that old
    assert gone == 6 and [r["id"] for r in left] == [ids[0]]
