"""The delivery worker's own parts, in process: a send resolves a name through the egress rule
and connects to exactly the address it checked (a name the system cannot resolve reaches a
receiver on loopback when loopback is listed, and nothing connects when it is not, nor for an
address written in the URL in any spelling); a claim takes at most its room per endpoint, the
endpoints taking turns; sends wait for their endpoint's and the process's
room, and one whose lease would end before it could finish is not sent."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
import uuid

from standardwebhooks import Webhook

from common.crypto import KeyRing
from common.endpoints import EndpointPolicy, parse_networks
from connector_service.outbound import events, queue, service, worker
from connector_service.settings import ConnectorServiceSettings
from tests.conftest import TEST_KEY_RING
from tests.connector_service.outbound_rig import receiver
from tests.support import connected, make_tenant

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _deliverer(database, networks: str) -> worker.Deliverer:
    async def names(host: str, port: int) -> list[str]:
        assert host == "hooks.test"  # no DNS: the rule's resolver answers this name only
        return ["127.0.0.1"]

    policy = EndpointPolicy(parse_networks(networks), name="egress").using(names)
    settings = ConnectorServiceSettings(webhook_timeout_seconds=2, smtp_timeout_seconds=2)
    return worker.Deliverer(database, KeyRing.from_json(TEST_KEY_RING), policy=policy,
                            settings=settings)  # fmt: skip


def _row() -> dict:
    return {"id": uuid.uuid4(), "endpoint_id": uuid.uuid4(), "event_id": uuid.uuid4(),
            "attempts": 1}  # fmt: skip


async def test_a_name_connects_to_the_address_the_rule_checked(database):
    d = _deliverer(database, "127.0.0.0/8")
    try:
        async with receiver() as hook:
            url = f"http://hooks.test:{hook.port}/hook"
            row, body = _row(), b'{"type":"sync.finished","data":{}}'
            result = await d._post(row, body, url, [Webhook(SECRET)])
            assert result == {**result, "ok": True, "status": 200, "error": None,
                              "state": "delivered"}  # fmt: skip
            assert len(result["response"]) == worker.RESPONSE_BYTES  # its first KiB
            (got,) = hook.got
            assert got.id == str(row["event_id"])
            Webhook(SECRET).verify(got.body, got.headers)
            # kept alive: the next send to the endpoint reuses the connection
            await d._post(_row(), body, url, [Webhook(SECRET)])
            assert len(hook.got) == 2
    finally:
        await d.aclose()


async def test_refused_names_and_addresses_connect_nowhere(database, listener):
    port, accepted = listener
    d = _deliverer(database, "0.0.0.0/0,::/0")  # production's rule: public addresses only
    try:
        for host in ("hooks.test", "127.0.0.1", "[::ffff:127.0.0.1]", "0x7f.1", "2130706433"):
            result = await d._post(_row(), b"{}", f"http://{host}:{port}/hook", [Webhook(SECRET)])
            assert not result["ok"] and result["status"] is None, (host, result)
            assert result["state"] == "pending"  # retried on the schedule, like any failure
            if host in ("hooks.test", "127.0.0.1", "[::ffff:127.0.0.1]"):
                assert result["error"] == "address_refused", (host, result)
        await asyncio.sleep(0.1)
        assert accepted == []
    finally:
        await d.aclose()


async def test_a_claim_takes_at_most_its_room_per_endpoint(dsn):
    t = await make_tenant(dsn)
    anything = EndpointPolicy(parse_networks("127.0.0.0/8"), name="test")
    ring = KeyRing.from_json(TEST_KEY_RING)
    async with connected(dsn) as conn:
        tx = conn.transaction()
        await tx.start()
        try:  # nothing committed: no other worker sees these rows
            busy, idle = [
                (await service.create(conn, ring, anything, tenant_id=t.tenant_id, actor="test",
                                      url=f"http://127.0.0.1:{p}/hook",
                                      event_types=[events.SYNC_FINISHED],
                                      description=""))[0]["id"]
                for p in (9, 10)
            ]  # fmt: skip
            await conn.execute("UPDATE outbound_deliveries SET next_at = now() + interval '1 h'"
                               " WHERE state = 'pending'")  # others' rows: not due here  # fmt: skip
            for i in range(30):
                await events.publish(conn, tenant_id=t.tenant_id, type=events.SYNC_FINISHED,
                                     data={"n": i})  # fmt: skip
            # endpoints take turns: a small batch takes from each
            first = await queue.claim(conn, limit=4, lease_seconds=30)
            assert sorted(r["endpoint_id"] == busy for r in first) == [False, False, True, True]
            rows = await queue.claim(conn, limit=100, lease_seconds=30, per_target=16,
                                     busy={busy: 10})  # fmt: skip
            by = {e: sum(r["endpoint_id"] == e for r in rows) for e in (busy, idle)}
            assert by == {busy: 6, idle: 16}
            assert all(r["attempts"] == 1 for r in rows)
            # leased: not claimed again
            again = await queue.claim(conn, limit=100, lease_seconds=30, per_target=100)
            assert {r["id"] for r in again}.isdisjoint({r["id"] for r in first + rows})
            assert len(again) == 60 - 4 - 22
        finally:
            await tx.rollback()


async def test_sends_wait_for_room_and_a_late_one_is_not_sent(database, monkeypatch):
    monkeypatch.setattr(worker, "PER_ENDPOINT", 3)
    monkeypatch.setattr(worker, "MAX_IN_FLIGHT", 5)
    d = _deliverer(database, "127.0.0.0/8")
    running: dict[str, int] = {"a": 0, "b": 0, "all": 0}
    most: dict[str, int] = {"a": 0, "b": 0, "all": 0}

    def job(target: str):
        async def send() -> dict:
            for k in (target, "all"):
                running[k] += 1
                most[k] = max(most[k], running[k])
            await asyncio.sleep(0.05)
            for k in (target, "all"):
                running[k] -= 1
            return {"target": target}

        return send

    a, b = uuid.uuid4(), uuid.uuid4()
    try:
        now = time.monotonic()
        for _ in range(8):
            d._start(a, {**_row(), "lease_id": uuid.uuid4()}, job("a"), now, 2)
            d._start(b, {**_row(), "lease_id": uuid.uuid4()}, job("b"), now, 2)
        # claimed longer ago than its lease allows to finish a send: not sent, released
        late = {**_row(), "lease_id": uuid.uuid4()}
        d._start(b, late, job("late"), now - d._lease, 2)
        await asyncio.wait_for(asyncio.gather(*d._claimed), 5)
        assert most == {"a": 3, "b": 3, "all": 5}
        assert sorted(r["target"] for r in d._results) == ["a"] * 8 + ["b"] * 8
        assert d._releases == [(late["id"], late["lease_id"])]
        assert d._busy == {} and d._gates == {}
    finally:
        await d.aclose()
