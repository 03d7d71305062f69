"""Anomaly alerts end to end: real calls through the gateway and connector_service to the demo
CRM with its fault switches on (latency, then 5xx), the rollup job's own function, then the
detector's evaluation; the alert is listed, acknowledged, and resolves by itself once the fault
is lifted. A normal hour of history is back-filled into the minute rollups, and each evaluation
is driven with an explicit ``now`` at the end of a minute the calls were read back in from the
rollups: nothing has to fit inside a real minute. Only the calls after the fault wait for a
minute later than the fault's last call to begin (a minute holding both is neither)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client import REGISTRY

from common.roles import Role
from connector_service.alerts.detector import CRITICAL, ERRORS, LATENCY, Rules
from connector_service.alerts.evaluate import evaluate
from connector_service.alerts.loop import LOCK_KEY
from connector_service.metrics import histogram, rollup
from tests.connector_service.rig import (
    Rig,
    fetch,
    install_crm,
    register,
    start_rig,
    stop_rig,
    wait_status,
)
from tests.support import add_key, connected, make_tenant

# One-minute windows and no persistence, so one real minute of faulty calls is one window; the
# persistence and hysteresis over several windows are the detector's unit tests.
RULES = Rules(window_minutes=1, min_calls=5, open_after=1, resolve_after=1, trailing_hours=2)
MINUTE = timedelta(minutes=1)
CALLS = 8  # a minute, in the history and in each phase
FAULT_MS = 1000


@pytest.fixture(scope="module")
def alerts_rig(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """A rig of this module's own: tenants' webhook endpoints may be on loopback (so alert
    events have a subscriber here), and the suite's own evaluation loop waits an hour after
    its first tick instead of judging these installs with its default rules meanwhile."""
    running = start_rig(
        dsn, tmp_path_factory.mktemp("alerts-rig"),
        SEEDOS_EGRESS_ALLOWED_NETWORKS="127.0.0.0/8", SEEDOS_CONNECTOR_ALERTS_EVALUATE_SECONDS="3600",
    )  # fmt: skip
    try:
        yield running
    finally:
        stop_rig(running)


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


async def _backfill(dsn: str, tenant_id: uuid.UUID, iid: uuid.UUID, before: datetime) -> None:
    """An hour of normal minutes before ``before``: CALLS calls, no error, p95 ~200 ms."""
    rows = []
    for n in range(1, 61):
        top = 150.0 + (n % 5) * 25  # 150..250 ms: some spread
        hist = {histogram.index(20.0): CALLS - 1, histogram.index(top): 1}
        index, count = histogram.columns(hist)
        rows.append((iid, before - n * MINUTE, tenant_id, CALLS, 20.0 * (CALLS - 1) + top, top,
                     index, count))  # fmt: skip
    async with connected(dsn) as conn:
        await conn.executemany(
            "INSERT INTO connector_metric_minutes (connector_id, bucket, tenant_id, service_name,"
            " calls, errors, records, latency_sum_ms, latency_max_ms, latency_index,"
            " latency_count) VALUES ($1, $2, $3, 'crm', $4, 0, 0, $5, $6, $7, $8)"
            " ON CONFLICT DO NOTHING",
            rows,
        )


async def _recorded(dsn: str, ids: list[uuid.UUID], since: datetime, at_least: int) -> None:
    """Wait until the recorder has written ``at_least`` calls of each install since ``since``."""
    deadline = time.monotonic() + 15
    while True:
        rows = await fetch(dsn, "SELECT connector_id, count(*) AS n FROM connector_metrics"
                                " WHERE connector_id = ANY($1::uuid[]) AND timestamp >= $2"
                                " AND metric_type = 'latency_ms' GROUP BY 1", ids, since)  # fmt: skip
        counts = {r["connector_id"]: r["n"] for r in rows}
        if all(counts.get(i, 0) >= at_least for i in ids):
            return
        assert time.monotonic() < deadline, counts
        await asyncio.sleep(0.1)


async def _evaluate(dsn: str, minute: datetime, ids: list[uuid.UUID]):
    """The rollup of ``minute`` and an evaluation as of its end (the test's installs only)."""
    async with connected(dsn) as conn:
        await rollup.roll_up(conn, start=minute, end=minute + MINUTE)
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)  # the suite's loop
            return await evaluate(conn, now=minute + MINUTE, rules=RULES, settle=timedelta(0),
                                  integration_ids=ids)  # fmt: skip


async def _calls(client: httpx.AsyncClient, checks: str, actions: str) -> None:
    """CALLS checks of one install (GET /v1/contacts at the CRM) and CALLS create_contact
    actions of the other (POST /v1/contacts), at once; failures are expected in a fault."""
    await asyncio.gather(
        *(client.post(f"/api/v1/integrations/{checks}/check") for _ in range(CALLS)),
        *(client.post(f"/api/v1/integrations/{actions}/actions/create_contact",
                      json={"input": {"email": f"a{uuid.uuid4().hex[:8]}@example.com"}},
                      headers={"Idempotency-Key": str(uuid.uuid4())})
          for _ in range(CALLS)),
    )  # fmt: skip


async def _landed(
    dsn: str, client: httpx.AsyncClient, slow: str, failing: str, *, after: datetime
) -> datetime:
    """Rounds of calls (:func:`_calls`) from ``after`` on, until a minute holds CALLS of each
    install's: that minute, read back from the rollups (the rollup job's own function over the
    minutes they landed in). A round split by a minute's end is followed by another."""
    ids = [uuid.UUID(slow), uuid.UUID(failing)]
    deadline = time.monotonic() + 60
    for rounds in range(1, 10):
        await _calls(client, slow, failing)
        await _recorded(dsn, ids, after, CALLS * rounds)
        async with connected(dsn) as conn:
            await rollup.roll_up(
                conn, start=_minute(after), end=_minute(datetime.now(UTC)) + MINUTE
            )
            rows = await conn.fetch(
                "SELECT bucket, connector_id, calls FROM connector_metric_minutes"
                " WHERE connector_id = ANY($1::uuid[]) AND bucket >= $2",
                ids, _minute(after),
            )  # fmt: skip
        calls: dict[datetime, dict[uuid.UUID, int]] = defaultdict(dict)
        for r in rows:
            calls[r["bucket"]][r["connector_id"]] = r["calls"]
        full = sorted(m for m, per in calls.items() if all(per.get(i, 0) >= CALLS for i in ids))
        if full:
            return full[0]
        assert time.monotonic() < deadline, calls
    raise AssertionError(f"no minute with {CALLS} calls of each install")


async def _after(minute: datetime) -> datetime:
    """The start of the minute after ``minute``, once it has begun."""
    nxt = minute + MINUTE
    await asyncio.sleep(max(0.0, (nxt - datetime.now(UTC)).total_seconds()) + 0.05)
    return nxt


def _opened_total(metric: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "seedos_connector_alerts_opened_total", {"metric": metric, "severity": CRITICAL}
        )
        or 0.0
    )


async def test_faults_open_alerts_that_are_listed_acknowledged_and_resolve(alerts_rig, dsn):
    rig = alerts_rig
    crm_slug = await register(dsn, rig.crm_connector.url)
    t = await make_tenant(dsn, role=Role.admin)
    viewer = await add_key(dsn, t, Role.viewer)
    other = await make_tenant(dsn, role=Role.admin)
    client = httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers, timeout=30)
    crm = httpx.AsyncClient(base_url=rig.crm.url, headers={"X-API-Key": rig.crm_key}, timeout=10)
    try:
        slow = await install_crm(client, rig, crm_slug)
        failing = await install_crm(client, rig, crm_slug)
        ids = [uuid.UUID(slow), uuid.UUID(failing)]
        for iid in (slow, failing):
            assert (await wait_status(client, iid, "active"))["status"] == "active"
        r = await client.post(
            "/api/v1/webhooks",
            json={
                "url": "http://127.0.0.1:9/alerts",
                "event_types": ["alert.opened", "alert.resolved"],
            },
        )
        assert r.status_code == 201, r.text  # fmt: skip
        opened_before = _opened_total(LATENCY), _opened_total(ERRORS)

        # The faults: every GET of contacts 1 s late, every POST of one a 503.
        for fault in (
            {"latency_ms": FAULT_MS, "methods": ["GET"]},
            {"latency_ms": 0, "status": 503, "methods": ["POST"]},
        ):
            r = await crm.post(
                "/admin/faults", json={"count": 1000, "paths": "/v1/contacts", **fault}
            )
            assert r.status_code == 201, r.text  # fmt: skip
        began = datetime.now(UTC)
        fault_minute = await _landed(dsn, client, slow, failing, after=began)
        await crm.delete("/admin/faults")
        await _goes_through(client, failing)
        fault_over = _minute(datetime.now(UTC))  # every faulty call was made by its end
        for iid in ids:  # the hour before the first faulty call
            await _backfill(dsn, t.tenant_id, iid, _minute(began))

        # One evaluation after the faulty minute opens both (the bound: open_after windows).
        # The failing install's calls are slow too (connector_service retries the 503s with
        # backoff), so it may have a latency alert as well; nothing else opens.
        outcome = await _evaluate(dsn, fault_minute, ids)
        rows = {
            (r["connector_id"], r["metric"]): r
            for r in await fetch(
                dsn, "SELECT * FROM connector_alerts WHERE connector_id = ANY($1::uuid[])", ids
            )
        }
        assert {(ids[0], LATENCY), (ids[1], ERRORS)} <= set(rows) <= {
            (ids[0], LATENCY), (ids[1], ERRORS), (ids[1], LATENCY)}, rows  # fmt: skip
        assert sorted(outcome.opened) == sorted(r["id"] for r in rows.values())
        everyone = {str(r["id"]) for r in rows.values()}
        latency, errors = rows[(ids[0], LATENCY)], rows[(ids[1], ERRORS)]
        e = latency["evidence"]
        assert latency["severity"] == CRITICAL and latency["state"] == "open"
        assert e["baseline"] == pytest.approx(200, rel=0.15) and e["baseline_kind"] == "trailing"
        assert e["observed"] >= 0.9 * FAULT_MS > e["critical_threshold"] > e["threshold"]
        assert e["spread"] > 0 and e["calls"][0] >= CALLS
        assert e["window_start"] == fault_minute.isoformat()
        assert e["window_end"] == (fault_minute + MINUTE).isoformat()
        assert errors["severity"] == CRITICAL and errors["evidence"]["baseline"] == 0
        assert errors["evidence"]["observed"] >= 0.8 and errors["evidence"]["unit"] == "ratio"
        critical_latency = sum(k[1] == LATENCY and r["severity"] == CRITICAL
                               for k, r in rows.items())  # fmt: skip
        assert (_opened_total(LATENCY), _opened_total(ERRORS)) == (
            opened_before[0] + critical_latency, opened_before[1] + 1)  # fmt: skip
        assert REGISTRY.get_sample_value("seedos_connector_alerts_open",
                                         {"severity": CRITICAL}) >= 2  # fmt: skip

        # Listed, newest first, filtered; counted; the events published with the change.
        r = await client.get("/api/v1/integrations/alerts")
        assert r.status_code == 200, r.text
        listed = r.json()["items"]
        assert {a["id"] for a in listed} == everyone
        assert [a["opened_at"] for a in listed] == sorted(
            (a["opened_at"] for a in listed), reverse=True)  # fmt: skip
        assert listed[0]["connector_name"] and listed[0]["evidence"]["window_minutes"] == 1
        r = await client.get("/api/v1/integrations/alerts", params={"integration_id": slow})
        assert [a["metric"] for a in r.json()["items"]] == [LATENCY]
        r = await client.get("/api/v1/integrations/alerts", params={"limit": 1})
        page2 = await client.get(
            "/api/v1/integrations/alerts", params={"limit": 1, "cursor": r.json()["next_cursor"]}
        )
        assert [a["id"] for a in r.json()["items"] + page2.json()["items"]] == [
            a["id"] for a in listed[:2]]  # fmt: skip
        assert (
            await client.get("/api/v1/integrations/alerts", params={"state": "resolved"})
        ).json()["items"] == []
        counted = (await client.get("/api/v1/integrations/alerts/summary")).json()
        assert counted["open"] == len(rows) and counted["critical"] >= 2
        assert (await client.get("/api/v1/integrations/alerts", headers=other.headers)
                ).json()["items"] == []  # fmt: skip
        events = await fetch(dsn, "SELECT type, data FROM outbound_events WHERE tenant_id = $1"
                                  " ORDER BY created_at", t.tenant_id)  # fmt: skip
        assert {ev["data"]["alert_id"] for ev in events if ev["type"] == "alert.opened"} == everyone

        # Acknowledged by an editor, once; a viewer may not, another tenant sees none of it.
        url = f"/api/v1/integrations/alerts/{latency['id']}/ack"
        assert (await client.post(url, headers=viewer.headers)).status_code == 403
        assert (await client.post(url, headers=other.headers)).status_code == 404
        first = await client.post(url)
        assert first.status_code == 200, first.text
        assert first.json()["acknowledged_by"] and first.json()["state"] == "open"
        again = await client.post(url)
        assert again.json()["acknowledged_at"] == first.json()["acknowledged_at"]
        r = await client.post(f"/api/v1/integrations/alerts/{uuid.uuid4()}/ack")
        assert r.status_code == 404 and r.json()["code"] == "alert_not_found"

        # The fault lifted: the next minute's calls are normal and both resolve by themselves
        # (resolve_after=1). On a loaded machine a minute of real calls may still be slower than
        # the line back to normal: up to three minutes of calls are made and judged.
        resolved_ids: set[str] = set()
        minutes, judged, normal_minute = [], [], fault_over
        for _ in range(3):
            normal_minute = await _landed(dsn, client, slow, failing,
                                          after=await _after(normal_minute))  # fmt: skip
            outcome = await _evaluate(dsn, normal_minute, ids)
            minutes.append(normal_minute.isoformat())
            judged.append(outcome)
            resolved_ids |= {str(i) for i in outcome.resolved}
            if resolved_ids == everyone:
                break
        seen = await fetch(dsn, "SELECT bucket, connector_id, calls, errors, latency_max_ms"
                                " FROM connector_metric_minutes WHERE connector_id = ANY($1::uuid[])"
                                " AND bucket >= $2 ORDER BY bucket", ids, fault_minute)  # fmt: skip
        assert resolved_ids == everyone, (judged, [dict(r) for r in seen])
        r = await client.get("/api/v1/integrations/alerts", params={"state": "resolved"})
        resolved = {a["id"]: a for a in r.json()["items"]}
        back = resolved[str(latency["id"])]
        assert back["resolved_at"] and back["acknowledged_at"] == first.json()["acknowledged_at"]
        assert back["resolution"]["observed"] <= back["resolution"]["normal_threshold"]
        assert back["resolution"]["window_start"] in minutes
        assert (await client.get("/api/v1/integrations/alerts")).json()["items"] == []

        audit = await fetch(dsn, "SELECT action, user_id FROM audit_logs WHERE tenant_id = $1"
                                 " AND action LIKE 'alert.%' ORDER BY seq", t.tenant_id)  # fmt: skip
        actions = [a["action"] for a in audit]
        assert sorted(actions) == sorted(["alert.opened"] * len(rows) + ["alert.acknowledged"]
                                         + ["alert.resolved"] * len(rows))  # fmt: skip
        assert {a["user_id"] for a in audit if a["action"] != "alert.acknowledged"} == {
            "system:alerts"
        }
        events = await fetch(dsn, "SELECT type FROM outbound_events WHERE tenant_id = $1"
                                  " AND type = 'alert.resolved'", t.tenant_id)  # fmt: skip
        assert len(events) == len(rows)
    finally:
        await crm.delete("/admin/faults")
        await crm.aclose()
        await client.aclose()


async def _goes_through(client: httpx.AsyncClient, iid: str) -> None:
    """The 503s opened the install's circuit: call until one goes through (still in the
    faulty minute), so the next minute is made of normal calls only."""
    deadline = time.monotonic() + 15
    while True:
        r = await client.post(
            f"/api/v1/integrations/{iid}/actions/create_contact",
            json={"input": {"email": f"p{uuid.uuid4().hex[:8]}@example.com"}},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        if r.status_code == 200:
            return
        assert time.monotonic() < deadline, r.text
        await asyncio.sleep(0.3)


async def _minutes(dsn: str, rows: list[tuple]) -> None:
    """Minute rollups ``(install, tenant, bucket, calls, p95_ms)``: every call at that latency."""
    async with connected(dsn) as conn:
        await conn.executemany(
            "INSERT INTO connector_metric_minutes (connector_id, bucket, tenant_id, service_name,"
            " calls, errors, records, latency_sum_ms, latency_max_ms, latency_index,"
            " latency_count) VALUES ($1, $2, $3, 'crm', $4, 0, 0, $5, $6, $7, $8)",
            [(iid, at, tid, calls, ms * calls, ms, [histogram.index(ms)], [calls])
             for iid, tid, at, calls, ms in rows],
        )  # fmt: skip


async def test_a_lasting_fault_stays_open_and_an_install_gone_quiet_resolves_as_no_data(
    alerts_rig, dsn
):
    """The service's rules (5-minute windows) over an install's own rollups, evaluated at the end
    of every window with an explicit ``now``, on installs with less than a day of history (a
    trailing baseline): a latency fault lasting 8 hours holds its alert open to the end (the
    faulty windows are kept out of the baseline) and it resolves on the recovery; an install
    whose calls stop during a latency alert resolves it as ``no_data`` after 4 x resolve_after
    windows without enough calls, audited and published, while its throughput alert stays."""
    rules, five = Rules(), timedelta(minutes=5)
    t = await make_tenant(dsn, role=Role.admin)
    client = httpx.AsyncClient(base_url=alerts_rig.suite.gateway, headers=t.headers, timeout=30)
    try:
        r = await client.post("/api/v1/webhooks", json={
            "url": "http://127.0.0.1:9/alerts", "event_types": ["alert.resolved"]})  # fmt: skip
        assert r.status_code == 201, r.text
    finally:
        await client.aclose()
    t0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    fault, recovery = t0 + timedelta(hours=8), t0 + timedelta(hours=16)
    quiet = fault + timedelta(minutes=30)  # the silent install's last minute with calls
    async with connected(dsn) as conn:
        lasting, silent = [
            await conn.fetchval(
                "INSERT INTO integration_connectors (tenant_id, connector_name, service_name)"
                " VALUES ($1, $2, 'crm') RETURNING id",
                t.tenant_id,
                name,
            )
            for name in ("lasting", "silent")
        ]
    rows = []
    for i in range(18 * 60):
        at = t0 + timedelta(minutes=i)
        rows.append((lasting, t.tenant_id, at, 30, 400.0 if fault <= at < recovery else 100.0))
        if at < quiet:
            rows.append((silent, t.tenant_id, at, 30, 2000.0 if at >= fault else 100.0))
    await _minutes(dsn, rows)

    changes: list[tuple[datetime, str, str, str]] = []  # (now, install, metric, action)
    async with connected(dsn) as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)  # no other loop meanwhile
        try:
            now = t0 + timedelta(hours=7)
            while now <= t0 + timedelta(hours=17, minutes=30):
                async with conn.transaction():
                    outcome = await evaluate(conn, now=now, rules=rules, settle=timedelta(0),
                                             integration_ids=[lasting, silent])  # fmt: skip
                for action in ("opened", "escalated", "resolved"):
                    for alert_id in getattr(outcome, action):
                        row = await conn.fetchrow("SELECT connector_id, metric FROM"
                                                  " connector_alerts WHERE id = $1", alert_id)  # fmt: skip
                        who = "lasting" if row["connector_id"] == lasting else "silent"
                        changes.append((now, who, row["metric"], action))
                now += five
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    alerts = {(r["connector_id"], r["metric"]): r for r in await fetch(
        dsn, "SELECT * FROM connector_alerts WHERE connector_id = ANY($1::uuid[])",
        [lasting, silent])}  # fmt: skip

    # The lasting fault: opened after open_after windows, open all 8 hours, resolved on the
    # recovery after resolve_after normal windows, judged against the baseline it opened on.
    mine = [c for c in changes if c[1] == "lasting"]
    assert mine == [
        (fault + rules.open_after * five, "lasting", LATENCY, "opened"),
        (recovery + rules.resolve_after * five, "lasting", LATENCY, "resolved"),
    ], changes
    a = alerts[(lasting, LATENCY)]
    assert a["severity"] == CRITICAL and a["evidence"]["hold_from"] == fault.isoformat()
    assert a["resolution"]["reason"] == "normal" and a["resolution"]["baseline_kind"] == "held"
    assert a["resolution"]["baseline"] == pytest.approx(100, rel=0.1)
    assert a["resolution"]["window_start"] == recovery.isoformat()

    # The silent install: its latency alert resolves as no_data once the last no_data_windows
    # windows have had too few calls (not one window sooner); its throughput alert stays.
    mine = [c for c in changes if c[1] == "silent"]
    no_data_at = quiet + rules.no_data_windows * five
    assert (no_data_at, "silent", LATENCY, "resolved") in mine, changes
    assert (no_data_at - five, "silent", LATENCY, "resolved") not in mine
    assert [c[3] for c in mine if c[2] == LATENCY] == ["opened", "resolved"], changes
    assert [c[3] for c in mine if c[2] == "throughput"] == ["opened"], changes
    gone = alerts[(silent, LATENCY)]
    assert gone["state"] == "resolved" and gone["resolved_at"] == no_data_at
    assert gone["resolution"]["reason"] == "no_data"
    assert gone["resolution"]["calls"] == [0] * rules.no_data_windows
    assert gone["resolution"]["window_end"] == no_data_at.isoformat()
    assert alerts[(silent, "throughput")]["state"] == "open"
    audit = await fetch(dsn, "SELECT payload FROM audit_logs WHERE tenant_id = $1 AND action ="
                             " 'alert.resolved'", t.tenant_id)  # fmt: skip
    reasons = sorted(a["payload"]["evidence"]["reason"] for a in audit)
    assert reasons == ["no_data", "normal"], audit
    events = await fetch(dsn, "SELECT data FROM outbound_events WHERE tenant_id = $1"
                              " AND type = 'alert.resolved'", t.tenant_id)  # fmt: skip
    assert sorted(e["data"]["evidence"]["reason"] for e in events) == ["no_data", "normal"]
