"""The rollups of connector_metrics: one row per install and minute, one per install and hour.

Each run recomputes from the raw rows every minute of a window and, from those minutes, every
hour the window touches, and upserts them: running it twice, or over a window already rolled
up, gives the same rows (idempotent). The job's window is every minute since the last run
(``rolled_until`` in connector_metric_rollup_state) and at least the trailing ``lookback`` (15
minutes by default), up to the current minute (excluded): a row written up to ``lookback``
after its call (the recorder queued it while the database was down, or another replica flushed
late) is still counted, and the minutes of a gap (every process down) are caught up on the next
run, as far back as raw rows are kept. Readers take the minutes before ``rolled_until`` from the
rollups and what is newer from the raw rows.

Only one process rolls up at a time: each chunk runs in a transaction holding a transaction-level
advisory lock (``pg_try_advisory_xact_lock`` in the job: another replica already busy means this
one skips its tick; ``pg_advisory_xact_lock`` when a caller asks for a window explicitly).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from connector_service.metrics.histogram import SQL_INDEX

LOCK_KEY = 0x5EED_0019_0001  # the advisory lock of the rollups (any constant no one else uses)
CHUNK = timedelta(hours=1)  # a catch-up runs one hour of raw rows per transaction
# The failures that are the connector's own (the marketplace's health signal counts them).
FAULTS = ("transport", "timeout", "retryable", "invalid_response")
_FAULTS_SQL = ", ".join(f"'{f}'" for f in FAULTS)

_ROLLUP_COLUMNS = """calls = EXCLUDED.calls, errors = EXCLUDED.errors, faults = EXCLUDED.faults,
    records = EXCLUDED.records, latency_sum_ms = EXCLUDED.latency_sum_ms,
    latency_max_ms = EXCLUDED.latency_max_ms, latency_index = EXCLUDED.latency_index,
    latency_count = EXCLUDED.latency_count, service_name = EXCLUDED.service_name"""

# Rows of an install deleted since (connector_id NULL) are left out: its rollups went with it.
_MINUTES = f"""
WITH raw AS (
    SELECT connector_id, date_trunc('minute', timestamp) AS bucket, service_name, metric_type,
           value, CASE WHEN metric_type = 'error' THEN labels ->> 'outcome' END AS outcome
    FROM connector_metrics
    WHERE timestamp >= $1 AND timestamp < $2 AND connector_id IS NOT NULL
      AND metric_type IN ('latency_ms', 'error', 'records')
), latency AS (
    SELECT connector_id, bucket, {SQL_INDEX} AS k, count(*) AS n
    FROM raw WHERE metric_type = 'latency_ms'
    GROUP BY 1, 2, 3
), histograms AS (
    SELECT connector_id, bucket, array_agg(k ORDER BY k)::smallint[] AS latency_index,
           array_agg(n ORDER BY k)::integer[] AS latency_count
    FROM latency GROUP BY 1, 2
), sums AS (
    SELECT connector_id, bucket, max(service_name) AS service_name,
           count(*) FILTER (WHERE metric_type = 'latency_ms') AS calls,
           count(*) FILTER (WHERE metric_type = 'error') AS errors,
           count(*) FILTER (WHERE outcome IN ({_FAULTS_SQL})) AS faults,
           coalesce(sum(value) FILTER (WHERE metric_type = 'records'), 0)::bigint AS records,
           coalesce(sum(value) FILTER (WHERE metric_type = 'latency_ms'), 0) AS latency_sum_ms,
           max(value) FILTER (WHERE metric_type = 'latency_ms') AS latency_max_ms
    FROM raw GROUP BY 1, 2
)
INSERT INTO connector_metric_minutes AS m (connector_id, bucket, tenant_id, service_name, calls,
    errors, faults, records, latency_sum_ms, latency_max_ms, latency_index, latency_count)
SELECT s.connector_id, s.bucket, ic.tenant_id, coalesce(s.service_name, ic.service_name),
       s.calls, s.errors, s.faults, s.records, s.latency_sum_ms, s.latency_max_ms,
       coalesce(h.latency_index, '{{}}'), coalesce(h.latency_count, '{{}}')
FROM sums s
JOIN integration_connectors ic ON ic.id = s.connector_id
LEFT JOIN histograms h ON h.connector_id = s.connector_id AND h.bucket = s.bucket
ORDER BY 1, 2
ON CONFLICT (connector_id, bucket) DO UPDATE SET {_ROLLUP_COLUMNS}
"""

# The hours whose minutes start in [$1, $2), from those minutes (histograms added bucket-wise).
_HOURS = f"""
WITH minutes AS (
    SELECT * FROM connector_metric_minutes WHERE bucket >= $1 AND bucket < $2
), latency AS (
    SELECT m.connector_id, date_trunc('hour', m.bucket) AS bucket, u.k, sum(u.n) AS n
    FROM minutes m, unnest(m.latency_index, m.latency_count) AS u(k, n)
    GROUP BY 1, 2, 3
), histograms AS (
    SELECT connector_id, bucket, array_agg(k ORDER BY k)::smallint[] AS latency_index,
           array_agg(n ORDER BY k)::integer[] AS latency_count
    FROM latency GROUP BY 1, 2
), sums AS (
    SELECT connector_id, date_trunc('hour', bucket) AS bucket, tenant_id,
           max(service_name) AS service_name, sum(calls)::integer AS calls,
           sum(errors)::integer AS errors, sum(faults)::integer AS faults,
           sum(records)::bigint AS records, sum(latency_sum_ms) AS latency_sum_ms,
           max(latency_max_ms) AS latency_max_ms
    FROM minutes GROUP BY 1, 2, 3
)
INSERT INTO connector_metric_hours AS m (connector_id, bucket, tenant_id, service_name, calls,
    errors, faults, records, latency_sum_ms, latency_max_ms, latency_index, latency_count)
SELECT s.connector_id, s.bucket, s.tenant_id, s.service_name, s.calls, s.errors, s.faults,
       s.records, s.latency_sum_ms, s.latency_max_ms, coalesce(h.latency_index, '{{}}'),
       coalesce(h.latency_count, '{{}}')
FROM sums s
LEFT JOIN histograms h ON h.connector_id = s.connector_id AND h.bucket = s.bucket
ORDER BY 1, 2
ON CONFLICT (connector_id, bucket) DO UPDATE SET {_ROLLUP_COLUMNS}
"""


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


async def recompute(conn: asyncpg.Connection, *, start: datetime, end: datetime) -> None:
    """Recompute the minutes in [start, end) (whole minutes: both are rounded down) and the
    hours they fall in. The caller holds the transaction and the advisory lock."""
    start, end = _minute(start), _minute(end)
    if start >= end:
        return
    await conn.execute(_MINUTES, start, end)
    last_hour = _hour(end - timedelta(microseconds=1))
    await conn.execute(_HOURS, _hour(start), last_hour + timedelta(hours=1))


async def roll_up(conn: asyncpg.Connection, *, start: datetime, end: datetime) -> None:
    """Recompute a window explicitly (tests, benches, an operator after a restore): waits for
    the lock in a transaction of its own. ``conn`` must not be in a transaction."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        await recompute(conn, start=start, end=end)


async def rolled_until(conn: asyncpg.Connection) -> datetime | None:
    """Every minute before this is in the rollups (None: the job has not run yet)."""
    return await conn.fetchval("SELECT rolled_until FROM connector_metric_rollup_state")


async def run(conn: asyncpg.Connection, *, lookback: timedelta, raw_retention: timedelta) -> bool:
    """One run of the job: the minutes since the last run and the trailing ``lookback``, up to
    the current minute, one chunk per transaction. False when another process holds the lock."""
    now = await conn.fetchval("SELECT now()")
    end = _minute(now)
    since = await rolled_until(conn)
    start = end - lookback if since is None else min(since, end - lookback)
    start = max(start, _minute(now - raw_retention) + timedelta(minutes=1))  # raw rows left
    while start < end:
        upto = min(start + CHUNK, end)
        async with conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", LOCK_KEY):
                return False
            await recompute(conn, start=start, end=upto)
            await conn.execute(
                "INSERT INTO connector_metric_rollup_state (id, rolled_until) VALUES (TRUE, $1)"
                " ON CONFLICT (id) DO UPDATE SET rolled_until ="
                " greatest(connector_metric_rollup_state.rolled_until, EXCLUDED.rolled_until)",
                upto,
            )
        start = upto
    return True
