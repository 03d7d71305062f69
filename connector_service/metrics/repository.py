"""SQL of the call history: the rollups (connector_metric_hours, connector_metric_minutes) and the
raw rows newer than them (connector_metrics), read over time ranges the service chooses.

Every statement reads the same rows from three sources, each over its own ranges (``Ranges``):
whole hours from the hour rollups, the minutes around them from the minute rollups, and what is
newer than the rollup job's ``rolled_until`` from the raw rows (one row per call, each taken as
a minute of one call). An install's history gets them keyed by step and adds them up itself
(one row per step, most often: hour rollups at 1-hour steps); a tenant's summary gets them
grouped by install, the latency histograms summed bucket-wise in SQL.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from connector_service.metrics.histogram import SQL_INDEX


@dataclass(frozen=True)
class Ranges:
    """Half-open ranges of bucket starts (rollups) and timestamps (raw); empty ones are equal."""

    hours: tuple[datetime, datetime]
    minutes: tuple[datetime, datetime]
    minutes_after: tuple[datetime, datetime]
    raw: tuple[datetime, datetime]

    def args(self) -> tuple[datetime, ...]:
        return (*self.hours, *self.minutes, *self.minutes_after, *self.raw)


_COLUMNS = "connector_id, bucket AS at, calls, errors, records, latency_index, latency_count"
# $1 the install or the tenant; $2..$9 the ranges (Ranges.args).
_ROWS = f"""
WITH rows AS (
    SELECT {_COLUMNS} FROM connector_metric_hours
    WHERE {{who}} = $1 AND bucket >= $2 AND bucket < $3
    UNION ALL
    SELECT {_COLUMNS} FROM connector_metric_minutes
    WHERE {{who}} = $1 AND bucket >= $4 AND bucket < $5
    UNION ALL
    SELECT {_COLUMNS} FROM connector_metric_minutes
    WHERE {{who}} = $1 AND bucket >= $6 AND bucket < $7
    UNION ALL
    SELECT connector_id, timestamp, (metric_type = 'latency_ms')::int,
           (metric_type = 'error')::int,
           CASE WHEN metric_type = 'records' THEN value::bigint ELSE 0 END,
           CASE WHEN metric_type = 'latency_ms' THEN ARRAY[{SQL_INDEX}]::smallint[]
                ELSE '{{}}'::smallint[] END,
           CASE WHEN metric_type = 'latency_ms' THEN ARRAY[1] ELSE '{{}}'::int[] END
    FROM connector_metrics
    WHERE {{who}} = $1 AND connector_id IS NOT NULL AND timestamp >= $8 AND timestamp < $9
      AND metric_type IN ('latency_ms', 'error', 'records')
), keyed AS (
    SELECT {{key}} AS key, calls, errors, records, latency_index, latency_count FROM rows
)"""
_GROUPED = """, sums AS (
    SELECT key, sum(calls)::bigint AS calls, sum(errors)::bigint AS errors,
           sum(records)::bigint AS records
    FROM keyed GROUP BY key
), latency AS (
    SELECT key, u.k, sum(u.n)::bigint AS n
    FROM keyed, unnest(latency_index, latency_count) AS u(k, n)
    GROUP BY key, u.k
), histograms AS (
    SELECT key, array_agg(k ORDER BY k) AS latency_index, array_agg(n ORDER BY k) AS latency_count
    FROM latency GROUP BY key
)
SELECT s.key, s.calls, s.errors, s.records, h.latency_index, h.latency_count
FROM sums s LEFT JOIN histograms h ON h.key = s.key
"""
_SERIES = (
    _ROWS.replace("{who}", "connector_id").replace(
        "{key}", "date_bin($10::interval, at, $11::timestamptz)"
    )
    + " SELECT * FROM keyed ORDER BY key"
)
_BY_INSTALL = _ROWS.replace("{who}", "tenant_id").replace("{key}", "connector_id") + _GROUPED


async def rolled_until(conn: asyncpg.Connection) -> datetime | None:
    return await conn.fetchval("SELECT rolled_until FROM connector_metric_rollup_state")


async def series(
    conn: asyncpg.Connection, integration_id: uuid.UUID, ranges: Ranges, *, start: datetime,
    step: timedelta,
) -> list[Any]:  # fmt: skip
    """The rows of the install's calls keyed by the step they fall in (key), ordered by it."""
    return await conn.fetch(_SERIES, integration_id, *ranges.args(), step, start)


async def by_install(conn: asyncpg.Connection, tenant_id: uuid.UUID, ranges: Ranges) -> list[Any]:
    """One row per install of the tenant with calls in the ranges (key: the install's id)."""
    return await conn.fetch(_BY_INSTALL, tenant_id, *ranges.args())


async def installs(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> list[Any]:
    return await conn.fetch(
        "SELECT id, connector_name, service_name FROM integration_connectors"
        " WHERE tenant_id = $1 ORDER BY connector_name, id",
        tenant_id,
    )
