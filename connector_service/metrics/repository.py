"""SQL of an install's call history: connector_metrics aggregated on read."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg

# One row per step: calls and their latency percentiles (latency_ms rows, one per call), and
# errors (error rows, one per failed call). The index on (connector_id, timestamp) bounds what
# is read to the install's rows in the window.
_SERIES = """
SELECT date_bin($4::interval, m.timestamp, $2::timestamptz) AS at,
       count(*) FILTER (WHERE m.metric_type = 'latency_ms') AS calls,
       count(*) FILTER (WHERE m.metric_type = 'error') AS errors,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY m.value)
           FILTER (WHERE m.metric_type = 'latency_ms') AS latency
FROM connector_metrics m
WHERE m.connector_id = $1 AND m.timestamp >= $2 AND m.timestamp < $3
  AND m.metric_type IN ('latency_ms', 'error')
GROUP BY 1 ORDER BY 1
"""


async def series(
    conn: asyncpg.Connection, integration_id: uuid.UUID, *, start: datetime, end: datetime,
    step: timedelta,
) -> list[Any]:  # fmt: skip
    return await conn.fetch(_SERIES, integration_id, start, end, step)
