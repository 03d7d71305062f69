"""Retention of the call history against the real database: exactly what is due goes (rows on
both sides of each boundary), in batches, and writers are never made to wait meanwhile; and the
loop that runs it with the rollups. Each test has a database of its own."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import structlog

from common import db, migrate
from connector_service.manager import recorder
from connector_service.metrics import jobs, retention, rollup
from connector_service.settings import ConnectorServiceSettings
from tests.support import connected, create_database, drop_database

KEEP = retention.Retention(raw=timedelta(days=7), minutes=timedelta(days=5),
                           hours=timedelta(days=6))  # fmt: skip
TICK = timedelta(microseconds=1)


@pytest.fixture
async def own_dsn(admin_dsn: str):
    """A database of the test's own: retention deletes by time, across tenants, what every other
    test wrote (and the suite's own retention, from the real clock, would delete these rows)."""
    url = await create_database(admin_dsn, prefix="seedos_retention")
    conn = await db.connect(url)
    try:
        await migrate.apply(conn)
    finally:
        await conn.close()
    yield url
    await drop_database(admin_dsn, url)


async def _install(conn) -> tuple[uuid.UUID, uuid.UUID]:
    """A tenant of its own and one install of it, made in the database."""
    tenant = await conn.fetchval(
        "INSERT INTO tenants (slug, name) VALUES ($1, 'Retention') RETURNING id",
        f"retention-{uuid.uuid4().hex[:10]}",
    )
    install = await conn.fetchval(
        "INSERT INTO integration_connectors (tenant_id, connector_name, service_name)"
        " VALUES ($1, 'retention test', 'crm') RETURNING id",
        tenant,
    )
    return tenant, install


async def _rollup_row(conn, table: str, tenant, install, bucket: datetime) -> None:
    await conn.execute(
        f"INSERT INTO {table} (connector_id, bucket, tenant_id, service_name, calls, errors)"
        " VALUES ($1, $2, $3, 'crm', 1, 0)",
        install, bucket, tenant,
    )  # fmt: skip


async def test_exactly_what_is_due_is_deleted_on_both_sides_of_each_boundary(own_dsn):
    now = datetime(2026, 1, 8, 12, 30, tzinfo=UTC)
    raw_cut, minute_cut, hour_cut = now - KEEP.raw, now - KEEP.minutes, now - KEEP.hours
    async with connected(own_dsn) as conn:
        tenant, install = await _install(conn)
        await conn.executemany(
            "INSERT INTO connector_metrics (tenant_id, connector_id, service_name, metric_type,"
            " value, timestamp) VALUES ($1, $2, 'crm', 'latency_ms', $3, $4)",
            [(tenant, install, float(n), at) for n, at in enumerate(
                [raw_cut - timedelta(days=1), raw_cut - TICK, raw_cut, raw_cut + TICK])],
        )  # fmt: skip
        # minutes: the one ending at the cut is all older than 5 days; the next is not
        for bucket in (minute_cut - timedelta(minutes=2), minute_cut - timedelta(minutes=1),
                       minute_cut):  # fmt: skip
            await _rollup_row(conn, "connector_metric_minutes", tenant, install, bucket)
        # hours (cut at 10:30): 09:00 ended before it; 10:00 holds younger minutes, so stays
        hour = hour_cut.replace(minute=0)
        for bucket in (hour - timedelta(hours=2), hour - timedelta(hours=1), hour):
            await _rollup_row(conn, "connector_metric_hours", tenant, install, bucket)
        deleted = await retention.run(conn, KEEP, batch=1, now=now)  # one row per statement
        assert deleted == {"raw": 2, "minutes": 2, "hours": 2}
        assert [r["timestamp"] for r in await conn.fetch(
            "SELECT timestamp FROM connector_metrics WHERE connector_id = $1 ORDER BY 1",
            install)] == [raw_cut, raw_cut + TICK]  # fmt: skip
        for table, kept in (("connector_metric_minutes", minute_cut),
                            ("connector_metric_hours", hour)):  # fmt: skip
            buckets = await conn.fetch(
                f"SELECT bucket FROM {table} WHERE connector_id = $1", install
            )
            assert [r["bucket"] for r in buckets] == [kept], table
        assert await retention.run(conn, KEEP, batch=1, now=now) == {
            "raw": 0, "minutes": 0, "hours": 0}  # fmt: skip


async def test_writers_are_not_blocked_while_a_large_retention_run_deletes(own_dsn):
    """200,000 due rows deleted 2,000 at a time, while the recorder's write and the rollup
    upsert run with a lock_timeout of 100 ms: none of them may have to wait on a lock."""
    now = datetime(2026, 1, 8, tzinfo=UTC)
    due = 200_000
    async with connected(own_dsn) as conn:
        tenant, install = await _install(conn)
        await conn.execute(
            "INSERT INTO connector_metrics (tenant_id, connector_id, service_name, metric_type,"
            " value, timestamp) SELECT $1, $2, 'crm', 'latency_ms', 1,"
            " $3::timestamptz - n * interval '1 second' FROM generate_series(1, $4) AS n",
            tenant, install, now - KEEP.raw, due,
        )  # fmt: skip
    writes = 0
    async with connected(own_dsn) as deleter, connected(own_dsn) as writer:
        await writer.execute("SET lock_timeout = '100ms'")
        running = asyncio.create_task(retention.run(deleter, KEEP, batch=2000, now=now))
        while not running.done():
            at = now - timedelta(minutes=1)  # recent rows of the same install and table
            rows = [(tenant, install, "retention test", "crm", "latency_ms", 3.0, "read", "ok",
                     at)] * 100  # fmt: skip
            assert await recorder.write(writer, rows) == 100
            async with writer.transaction():  # without the job's advisory lock: only
                await rollup.recompute(writer, start=at, end=now)  # row locks are tested here
            if not running.done():
                writes += 1
            await asyncio.sleep(0.01)
        deleted = await running
    assert deleted["raw"] == due and writes >= 5, (deleted, writes)


async def test_the_loop_rolls_up_survives_the_database_down_and_stops_when_cancelled(
    own_dsn, tmp_path
):
    settings = ConnectorServiceSettings(env="development", data_dir=tmp_path,
                                        rollup_seconds=0.05)  # fmt: skip
    async with connected(own_dsn) as conn:
        tenant, install = await _install(conn)
        at = await conn.fetchval("SELECT now() - interval '2 minutes'")
        await conn.execute(
            "INSERT INTO connector_metrics (tenant_id, connector_id, service_name, metric_type,"
            " value, timestamp) VALUES ($1, $2, 'crm', 'latency_ms', 4, $3)",
            tenant, install, at,
        )  # fmt: skip
    pool = await asyncpg.create_pool(own_dsn, min_size=0, max_size=2, init=db._init_connection)
    loop = asyncio.create_task(jobs.run_forever(db.Database(pool, acquire_timeout=5), settings))
    try:
        async with connected(own_dsn) as conn:
            for _ in range(200):  # nothing else rolls up in this database
                calls = await conn.fetchval(
                    "SELECT sum(calls) FROM connector_metric_minutes WHERE connector_id = $1",
                    install)  # fmt: skip
                if calls:
                    break
                await asyncio.sleep(0.05)
            assert calls == 1 and await rollup.rolled_until(conn) > at
    finally:
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop
        await pool.close()
    # a database that does not answer: a warning each time, and the loop goes on until cancelled
    pool = await asyncpg.create_pool("postgresql://nobody@127.0.0.1:9/none", min_size=0)
    with structlog.testing.capture_logs() as logs:
        loop = asyncio.create_task(jobs.run_forever(db.Database(pool, acquire_timeout=1), settings))
        await asyncio.sleep(0.3)
        assert not loop.done()
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop
    await pool.close()
    assert {e["event"] for e in logs} >= {"metric_rollup_failed", "metric_retention_failed"}
