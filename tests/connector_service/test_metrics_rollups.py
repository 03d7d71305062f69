"""The call history's write path and rollups against the real database: the recorder's COPY
(with tenants and installs deleted before the write), the histogram index in SQL against
Python's, the minute and hour rollups (exact figures, idempotent, late rows), and the job's
window with its state."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime, timedelta

from connector_service.manager.recorder import Call, Recorder
from connector_service.metrics import histogram, rollup
from connector_service.metrics.histogram import SQL_INDEX
from tests.support import connected, make_tenant

# In the future: no other test writes history then, and the suite's own jobs never touch it
# (its rollups look back from now, its retention deletes only what is older).
ERA = datetime(2041, 3, 1, 10, tzinfo=UTC)


async def _install(conn, tenant_id: uuid.UUID, service: str = "crm") -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO integration_connectors (tenant_id, connector_name, service_name)"
        " VALUES ($1, 'history test', $2) RETURNING id",
        tenant_id,
        service,
    )


async def _raw(conn, tenant_id, install, rows) -> None:
    """rows: (metric_type, value, outcome, at), written as the recorder writes them."""
    await conn.executemany(
        "INSERT INTO connector_metrics (tenant_id, connector_id, connector_name, service_name,"
        " metric_type, value, labels, timestamp)"
        " VALUES ($1, $2, 'history test', 'crm', $3, $4,"
        " jsonb_build_object('operation', 'read', 'outcome', $5::text), $6)",
        [(tenant_id, install, kind, value, outcome, at) for kind, value, outcome, at in rows],
    )


def _edges() -> list[float]:
    values = [0.0, 0.25, 0.999999, 1.0, 1e9, float(2**17), 2**17 * 1.5]
    for k in range(histogram.LAST + 2):
        edge = 2 ** (k / histogram.PER_DOUBLING)
        values += [edge, math.nextafter(edge, 0), math.nextafter(edge, math.inf)]
        values += [edge * (1 - 1e-12), edge * (1 + 1e-12)]
    return values


async def test_the_sql_bucket_index_agrees_with_python_at_every_edge(conn):
    values = _edges()
    rows = await conn.fetch(
        f"SELECT value, {SQL_INDEX} AS k FROM unnest($1::float8[]) AS t(value)", values
    )
    disagree = [(r["value"], r["k"], histogram.index(r["value"])) for r in rows
                if r["k"] != histogram.index(r["value"])]  # fmt: skip
    assert len(rows) == len(values) and not disagree


async def test_minutes_and_hours_hold_exact_figures_and_recomputing_changes_nothing(dsn):
    t = await make_tenant(dsn)
    async with connected(dsn) as conn:
        install = await _install(conn, t.tenant_id)
        rows = []
        for minute in range(3):  # 10:00, 10:01, 10:02 and one row in 11:00
            at = ERA + timedelta(minutes=minute, seconds=30)
            rows += [("latency_ms", 10.0 * (minute + 1) + n, "ok", at) for n in range(5)]
        rows += [("error", 1.0, "timeout", ERA), ("error", 1.0, "auth", ERA)]
        rows += [("records", 40.0, "ok", ERA), ("records", 2.0, "ok", ERA)]
        rows += [("latency_ms", 0.4, "ok", ERA + timedelta(hours=1, seconds=59))]
        await _raw(conn, t.tenant_id, install, rows)
        for _ in range(2):  # the second run recomputes the same rows
            await rollup.roll_up(conn, start=ERA, end=ERA + timedelta(hours=2))
            minutes = await conn.fetch(
                "SELECT * FROM connector_metric_minutes WHERE connector_id = $1 ORDER BY bucket",
                install,
            )
            hours = await conn.fetch(
                "SELECT * FROM connector_metric_hours WHERE connector_id = $1 ORDER BY bucket",
                install,
            )
            assert [m["bucket"] for m in minutes] == [
                ERA, ERA + timedelta(minutes=1), ERA + timedelta(minutes=2),
                ERA + timedelta(hours=1)]  # fmt: skip
            first = minutes[0]
            assert (first["calls"], first["errors"], first["faults"], first["records"]) == (
                5, 2, 1, 42)  # fmt: skip
            assert first["latency_sum_ms"] == sum(10.0 + n for n in range(5))
            assert first["latency_max_ms"] == 14.0
            assert first["tenant_id"] == t.tenant_id and first["service_name"] == "crm"
            expected = histogram.columns(_histogram([10.0 + n for n in range(5)]))
            assert (list(first["latency_index"]), list(first["latency_count"])) == expected
            assert (minutes[3]["calls"], list(minutes[3]["latency_index"])) == (1, [0])
            assert [h["bucket"] for h in hours] == [ERA, ERA + timedelta(hours=1)]
            ten = hours[0]
            latencies = [10.0 * (m + 1) + n for m in range(3) for n in range(5)]
            assert (ten["calls"], ten["errors"], ten["faults"], ten["records"]) == (15, 2, 1, 42)
            assert ten["latency_sum_ms"] == sum(latencies) and ten["latency_max_ms"] == 34.0
            assert (list(ten["latency_index"]), list(ten["latency_count"])) == (
                histogram.columns(_histogram(latencies)))  # fmt: skip
        # a row written late into a rolled-up minute counts once the window is run again
        await _raw(conn, t.tenant_id, install, [("latency_ms", 500.0, "ok", ERA)])
        await rollup.roll_up(conn, start=ERA, end=ERA + timedelta(minutes=1))
        assert await conn.fetchval(
            "SELECT calls FROM connector_metric_hours WHERE connector_id = $1 AND bucket = $2",
            install, ERA,
        ) == 16  # fmt: skip


def _histogram(latencies: list[float]) -> dict[int, int]:
    found: dict[int, int] = {}
    for ms in latencies:
        found[histogram.index(ms)] = found.get(histogram.index(ms), 0) + 1
    return found


async def _run_job(conn, **kwargs) -> None:
    """One run of the job; the suite's connector_service may hold the lock for a moment."""
    for _ in range(200):
        if await rollup.run(conn, **kwargs):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the rollup lock stayed taken")


async def test_the_job_rolls_up_recent_minutes_and_rows_up_to_its_lookback_late(dsn):
    t = await make_tenant(dsn)
    kwargs = {"lookback": timedelta(minutes=15), "raw_retention": timedelta(days=7)}
    async with connected(dsn) as conn:
        install = await _install(conn, t.tenant_id)
        now = await conn.fetchval("SELECT now()")
        await _raw(
            conn, t.tenant_id, install, [("latency_ms", 5.0, "ok", now - timedelta(minutes=3))]
        )
        await _run_job(conn, **kwargs)
        until = await rollup.rolled_until(conn)
        assert until is not None and until >= now.replace(second=0, microsecond=0)

        async def calls() -> int:
            return await conn.fetchval(
                "SELECT coalesce(sum(calls), 0) FROM connector_metric_minutes"
                " WHERE connector_id = $1", install)  # fmt: skip

        assert await calls() == 1
        # written after the run: one 10 minutes late (counted), one 40 minutes late (not)
        await _raw(conn, t.tenant_id, install, [
            ("latency_ms", 5.0, "ok", now - timedelta(minutes=10)),
            ("latency_ms", 5.0, "ok", now - timedelta(minutes=40))])  # fmt: skip
        await _run_job(conn, **kwargs)
        assert await calls() == 2


async def test_the_recorder_copies_and_keeps_other_rows_when_a_tenant_or_install_is_gone(
    dsn, database
):
    kept, gone = await make_tenant(dsn), await make_tenant(dsn)
    async with connected(dsn) as conn:
        install = await _install(conn, kept.tenant_id)
        removed = await _install(conn, kept.tenant_id)
        other = await _install(conn, gone.tenant_id)
    recorder = Recorder(database, flush_seconds=60, batch_size=1000, max_queued=1000)
    recorder.record(Call(kept.tenant_id, install, "history test", "crm", "read", 0.012,
                         records=25))  # fmt: skip
    recorder.record(Call(kept.tenant_id, install, "history test", "crm", "write", 0.5,
                         error_class="timeout"))  # fmt: skip
    recorder.record(Call(kept.tenant_id, removed, "history test", "crm", "read", 0.02))
    recorder.record(Call(gone.tenant_id, other, "history test", "crm", "read", 0.02))
    async with connected(dsn) as conn:  # deleted after the calls, before the write
        await conn.execute("DELETE FROM integration_connectors WHERE id = $1", removed)
        await conn.execute("DELETE FROM tenants WHERE id = $1", gone.tenant_id)
    assert await recorder.flush() == 5 and not recorder._rows
    async with connected(dsn) as conn:
        rows = await conn.fetch(
            "SELECT connector_id, metric_type, value, labels FROM connector_metrics"
            " WHERE tenant_id = ANY($1) ORDER BY id", [kept.tenant_id, gone.tenant_id])  # fmt: skip
    assert [(r["connector_id"], r["metric_type"], r["value"], r["labels"]) for r in rows] == [
        (install, "latency_ms", 12.0, {"operation": "read", "outcome": "ok"}),
        (install, "records", 25.0, {"operation": "read", "outcome": "ok"}),
        (install, "latency_ms", 500.0, {"operation": "write", "outcome": "timeout"}),
        (install, "error", 1.0, {"operation": "write", "outcome": "timeout"}),
        (None, "latency_ms", 20.0, {"operation": "read", "outcome": "ok"}),
    ]
    async with connected(dsn) as conn:  # and the records reach the minute rollup
        now = await conn.fetchval("SELECT now()")
        await rollup.roll_up(conn, start=now - timedelta(minutes=2), end=now + timedelta(minutes=1))
        minute = await conn.fetchrow(
            "SELECT sum(calls) AS calls, sum(errors) AS errors, sum(faults) AS faults,"
            " sum(records) AS records FROM connector_metric_minutes WHERE connector_id = $1",
            install,
        )
    assert dict(minute) == {"calls": 2, "errors": 1, "faults": 1, "records": 25}


async def test_the_marketplace_health_signal_reads_hours_older_than_the_raw_rows(dsn):
    """The recommendations' health counts the connector's own failures (faults) of the hour
    rollups, which outlive the raw rows (a week), over its whole window and not past it."""
    from marketplace_service.recommendations import repository as recommendations

    t = await make_tenant(dsn)
    service = f"health-{uuid.uuid4().hex[:8]}"
    async with connected(dsn) as conn:
        install = await _install(conn, t.tenant_id, service)
        now = await conn.fetchval("SELECT date_trunc('hour', now())")
        for days, calls, errors, faults in ((10, 100, 50, 30), (20, 1000, 1000, 1000)):
            await conn.execute(
                "INSERT INTO connector_metric_hours (connector_id, bucket, tenant_id,"
                " service_name, calls, errors, faults) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                install, now - timedelta(days=days), t.tenant_id, service, calls, errors, faults,
            )  # fmt: skip
        found = {s: (c, e) for s, c, e in await recommendations.health(
            conn, window_seconds=14 * 86400)}  # fmt: skip
        assert found[service] == (100, 30)
        week = {s for s, _, _ in await recommendations.health(conn, window_seconds=7 * 86400)}
        assert service not in week


async def test_an_uninstalled_installs_failures_still_count_for_health(dsn):
    """Uninstalling a failing connector (what a tenant does about one) takes its rollups with
    it; its raw rows stay, without their install, and the health signal still counts them."""
    from marketplace_service.recommendations import repository as recommendations

    t = await make_tenant(dsn)
    service = f"health-{uuid.uuid4().hex[:8]}"
    async with connected(dsn) as conn:
        install = await _install(conn, t.tenant_id, service)
        at = await conn.fetchval("SELECT date_trunc('hour', now()) - interval '3 hours'")
        rows = [("latency_ms", 5.0, at), ("latency_ms", 5.0, at), ("error", 1.0, at)]
        await conn.executemany(
            "INSERT INTO connector_metrics (tenant_id, connector_id, connector_name,"
            " service_name, metric_type, value, labels, timestamp)"
            " VALUES ($1, $2, 'x', $3, $4, $5, '{\"outcome\": \"timeout\"}'::jsonb, $6)",
            [(t.tenant_id, install, service, kind, value, when) for kind, value, when in rows],
        )
        await rollup.roll_up(conn, start=at, end=at + timedelta(hours=1))
        before = {s: (c, e) for s, c, e in await recommendations.health(
            conn, window_seconds=86400)}  # fmt: skip
        await conn.execute("DELETE FROM integration_connectors WHERE id = $1", install)
        after = {s: (c, e) for s, c, e in await recommendations.health(
            conn, window_seconds=86400)}  # fmt: skip
    assert before[service] == (2, 1)
    assert after[service] == (2, 1)
