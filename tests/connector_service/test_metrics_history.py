"""An install's call history for the dashboard (GET .../metrics): calls, errors and latency
percentiles per step, through the gateway, from rows the test writes where the recorder would,
rolled up by the rollup job run over their window (the service's own job only looks back
minutes). Percentiles come from the rollups' log-scale histogram: the exact value of the
histogram of the latencies written, within its documented 9% of the exact percentile."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from common.roles import Role
from connector_service.metrics import histogram, rollup
from tests.connector_service.rig import install_crm
from tests.support import connected, make_tenant

# Two days back, on the hour: within every retention (the suite's own job deletes raw rows past
# seven days), before the window the service's job rolls up by itself.
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)


@pytest.fixture
async def install(rig, dsn, crm_slug):
    slug = crm_slug
    t = await make_tenant(dsn, role=Role.admin)
    client = httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers, timeout=30)
    iid = await install_crm(client, rig, slug)
    rows = []
    for hour in range(3):  # 10 calls an hour, latencies hour*100 + 1..10 ms, 2 failed in hour 1
        for n in range(10):
            at = T0 + timedelta(hours=hour, minutes=n)
            rows.append(("latency_ms", hour * 100 + n + 1.0, at))
            if hour == 1 and n < 2:
                rows.append(("error", 1.0, at))
    rows.append(("latency_ms", 5000.0, T0 + timedelta(hours=9)))  # outside the window asked
    async with connected(dsn) as conn:
        await conn.executemany(
            "INSERT INTO connector_metrics (tenant_id, connector_id, connector_name,"
            " service_name, metric_type, value, labels, timestamp)"
            " VALUES ($1, $2, 'crm', 'crm', $3, $4, '{}'::jsonb, $5)",
            [(t.tenant_id, uuid.UUID(iid), kind, value, at) for kind, value, at in rows],
        )
        await rollup.roll_up(conn, start=T0, end=T0 + timedelta(hours=10))
    try:
        yield client, iid, t
    finally:
        await client.aclose()


async def test_calls_errors_and_percentiles_per_step(install, dsn):
    client, iid, _ = install
    params = {"from": T0.isoformat(), "to": (T0 + timedelta(hours=4)).isoformat(), "step": 3600}
    r = await client.get(f"/api/v1/integrations/{iid}/metrics", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["step"] == 3600 and len(body["points"]) == 4  # every step, the empty one too
    first, second, _, empty = body["points"]
    assert datetime.fromisoformat(first["at"]) == T0
    assert (first["calls"], first["errors"], first["error_rate"]) == (10, 0, 0.0)
    hours = [[hour * 100 + n + 1.0 for n in range(10)] for hour in range(2)]
    assert first["p50_ms"] == _bucketed(hours[0], 0.5) == pytest.approx(5.5, rel=0.09)
    assert first["p99_ms"] == _bucketed(hours[0], 0.99) == pytest.approx(9.91, rel=0.09)
    assert (second["calls"], second["errors"], second["error_rate"]) == (10, 2, 0.2)
    assert second["p95_ms"] == _bucketed(hours[1], 0.95) == pytest.approx(109.55, rel=0.09)
    assert (empty["calls"], empty["error_rate"], empty["p50_ms"]) == (0, None, None)
    assert body["totals"] == {"calls": 30, "errors": 2, "error_rate": round(2 / 30, 4)}


async def test_the_default_window_is_the_last_day(install, dsn):
    """Installing calls the connector, and the recorder may write those calls at any moment:
    the answer must lie between the day's rows counted just before and just after it."""
    client, iid, t = install
    now = datetime.now(UTC)
    count = (
        "SELECT count(*) FROM connector_metrics WHERE connector_id = $1"
        " AND metric_type = 'latency_ms' AND timestamp > now() - interval '24 hours'"
    )
    async with connected(dsn) as conn:
        await conn.executemany(
            "INSERT INTO connector_metrics (tenant_id, connector_id, connector_name,"
            " service_name, metric_type, value, labels, timestamp)"
            " VALUES ($1, $2, 'crm', 'crm', 'latency_ms', 7.0, '{}'::jsonb, $3)",
            [(t.tenant_id, uuid.UUID(iid), now - timedelta(hours=h)) for h in (2, 3, 25)],
        )
        await rollup.roll_up(conn, start=now - timedelta(hours=26), end=now)
        before = await conn.fetchval(count, uuid.UUID(iid))
        r = await client.get(f"/api/v1/integrations/{iid}/metrics")
        after = await conn.fetchval(count, uuid.UUID(iid))
    assert r.status_code == 200, r.text
    assert before >= 2 and before <= r.json()["totals"]["calls"] <= after  # not the 25 h one
    assert 90 <= len(r.json()["points"]) <= 100 and r.json()["step"] == 900


async def test_bad_windows_and_other_tenants_are_refused(install, dsn):
    client, iid, _ = install
    url = f"/api/v1/integrations/{iid}/metrics"
    for params in (
        {"from": T0.isoformat(), "to": T0.isoformat()},  # empty
        {"from": (T0 - timedelta(days=400)).isoformat(), "to": T0.isoformat()},  # too long
        {"from": T0.isoformat(), "to": (T0 + timedelta(days=2)).isoformat(), "step": 60},
        {"step": 10},  # below a minute
        {"step": 90},  # not whole minutes
        # steps under an hour reach back only as far as the minute rollups are kept
        {"from": (T0 - timedelta(days=40)).isoformat(), "to": T0.isoformat(), "step": 3000},
    ):
        r = await client.get(url, params=params)
        assert r.status_code == 422 and r.json()["code"] == "invalid_window", (params, r.text)
    # dates near the calendar's ends, and steps past a year: refused, not an overflow (500)
    for params in (
        {"from": "9999-12-31T23:00:00Z", "to": "9999-12-31T23:59:59Z", "step": 3600},
        {"from": "0001-01-01T00:00:00Z", "to": "0001-01-01T01:00:00Z"},
    ):
        r = await client.get(url, params=params)
        assert r.status_code == 422 and r.json()["code"] == "invalid_window", (params, r.text)
    for params in ({"from": "yesterday"}, {"step": 10**18}):
        r = await client.get(url, params=params)
        assert r.status_code == 422, (params, r.text)
    other = await make_tenant(dsn, role=Role.admin)
    r = await client.get(url, headers=other.headers)
    assert r.status_code == 404


async def test_a_window_ending_inside_a_minute_counts_only_calls_before_its_end(install, dsn):
    """A minute rollup holds its whole minute: the minute ``to`` falls in comes from raw rows."""
    client, iid, t = install
    minute = T0 + timedelta(hours=5)
    async with connected(dsn) as conn:
        await conn.executemany(
            "INSERT INTO connector_metrics (tenant_id, connector_id, connector_name,"
            " service_name, metric_type, value, labels, timestamp)"
            " VALUES ($1, $2, 'crm', 'crm', 'latency_ms', 7.0, '{}'::jsonb, $3)",
            [(t.tenant_id, uuid.UUID(iid), minute + timedelta(seconds=s)) for s in (10, 50)],
        )
        await rollup.roll_up(conn, start=minute, end=minute + timedelta(minutes=1))
    window = {"from": minute.isoformat(), "to": (minute + timedelta(seconds=30)).isoformat()}
    r = await client.get(f"/api/v1/integrations/{iid}/metrics", params={**window, "step": 60})
    assert r.status_code == 200, r.text
    assert r.json()["totals"]["calls"] == 1  # the call at :50 is after `to`
    r = await client.get("/api/v1/integrations/metrics/summary", params=window)
    assert r.status_code == 200, r.text
    assert r.json()["totals"]["calls"] == 1


def _bucketed(latencies: list[float], q: float) -> float:
    """The q-th percentile the rollups' histogram gives for these latencies, as answered."""
    counts: dict[int, int] = {}
    for ms in latencies:
        counts[histogram.index(ms)] = counts.get(histogram.index(ms), 0) + 1
    return round(histogram.quantiles(counts, [q])[0], 2)
