"""The tenant's summary (GET /api/v1/integrations/metrics/summary) through the gateway: every
install with its calls, errors, percentiles and records over a window, rolled-up minutes and
the newest raw rows alike, and the tenant's totals; bad windows refused as problem+json."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from common.roles import Role
from connector_service.metrics import histogram, rollup
from tests.support import connected, make_tenant

URL = "/api/v1/integrations/metrics/summary"


async def _install(conn, tenant_id: uuid.UUID, name: str) -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO integration_connectors (tenant_id, connector_name, service_name)"
        " VALUES ($1, $2, 'crm') RETURNING id",
        tenant_id,
        name,
    )


def _percentile(latencies: list[float], q: float) -> float:
    counts: dict[int, int] = {}
    for ms in latencies:
        counts[histogram.index(ms)] = counts.get(histogram.index(ms), 0) + 1
    return round(histogram.quantiles(counts, [q])[0], 2)


async def test_every_install_and_the_totals_over_the_window(rig, dsn):
    t = await make_tenant(dsn, role=Role.viewer)
    now = datetime.now(UTC)
    async with connected(dsn) as conn:
        busy = await _install(conn, t.tenant_id, "a busy one")
        idle = await _install(conn, t.tenant_id, "b idle one")
        rows = [(busy, "latency_ms", ms, now - timedelta(hours=3)) for ms in (10, 20, 30, 40)]
        rows += [
            (busy, "error", 1.0, now - timedelta(hours=3)),
            (busy, "records", 100.0, now - timedelta(hours=3)),
            (busy, "latency_ms", 5000.0, now - timedelta(hours=30)),
        ]  # outside 24 h
        # just written, not rolled up by anyone yet: read from the raw rows
        rows += [(busy, "latency_ms", 50.0, now), (busy, "records", 5.0, now)]
        await conn.executemany(
            "INSERT INTO connector_metrics (tenant_id, connector_id, connector_name,"
            " service_name, metric_type, value, labels, timestamp) VALUES ($1, $2, 'x', 'crm',"
            ' $3, $4, \'{"outcome": "timeout"}\'::jsonb, $5)',
            [(t.tenant_id, *row) for row in rows],
        )
        await rollup.roll_up(conn, start=now - timedelta(hours=31), end=now - timedelta(hours=1))
    async with httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers) as client:
        r = await client.get(URL)
        assert r.status_code == 200, r.text
        body = r.json()
        other = await make_tenant(dsn, role=Role.viewer)
        theirs = (await client.get(URL, headers=other.headers)).json()
    latencies = [10.0, 20.0, 30.0, 40.0, 50.0]
    first, second = body["items"]
    assert first == {
        "id": str(busy), "name": "a busy one", "service_name": "crm", "calls": 5, "errors": 1,
        "error_rate": 0.2, "p50_ms": _percentile(latencies, 0.5),
        "p95_ms": _percentile(latencies, 0.95), "p99_ms": _percentile(latencies, 0.99),
        "records": 105,
    }  # fmt: skip
    assert second == {
        "id": str(idle), "name": "b idle one", "service_name": "crm", "calls": 0, "errors": 0,
        "error_rate": None, "p50_ms": None, "p95_ms": None, "p99_ms": None, "records": 0,
    }  # fmt: skip
    assert body["totals"] == {
        "calls": 5, "errors": 1, "records": 105, "error_rate": 0.2,
        "p50_ms": first["p50_ms"], "p95_ms": first["p95_ms"], "p99_ms": first["p99_ms"],
    }  # fmt: skip
    assert datetime.fromisoformat(body["to"]) - datetime.fromisoformat(body["from"]) >= (
        timedelta(hours=24))  # fmt: skip
    assert theirs["items"] == [] and theirs["totals"]["calls"] == 0  # another tenant's own

    # a window of 40 days (past the minute rollups: whole hours) still counts them
    async with httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers) as client:
        r = await client.get(URL, params={"from": (now - timedelta(days=40)).isoformat()})
    assert r.status_code == 200, r.text
    assert r.json()["items"][0]["calls"] == 6  # the 30-hour-old call too


async def test_bad_windows_are_problems(rig, dsn):
    t = await make_tenant(dsn, role=Role.viewer)
    now = datetime.now(UTC)
    async with httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers) as client:
        for params in (
            {"from": now.isoformat(), "to": (now - timedelta(hours=1)).isoformat()},
            {"from": (now - timedelta(days=400)).isoformat()},
        ):
            r = await client.get(URL, params=params)
            assert r.status_code == 422, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["code"] == "invalid_window"
        r = await client.get(URL, params={"from": "yesterday"})
        assert r.status_code == 422
        assert (await client.get(URL, headers={"Authorization": "Bearer nope"})).status_code == 401
