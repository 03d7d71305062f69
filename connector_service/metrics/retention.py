"""Retention of the call history: raw rows, minute and hour rollups each past their age.

Deletes go in small batches, each one statement in a transaction of its own (autocommit), so no
batch holds its row locks for long, and a batch takes only the locks a writer never waits on: a
ROW EXCLUSIVE table lock (which inserts take too, and which does not conflict with itself) and
the locks of the old rows it deletes, which no writer touches (the recorder inserts new rows;
the rollup job upserts recent minutes and hours). Several processes may run it at once: each
batch takes its rows ``FOR UPDATE SKIP LOCKED``, so two never wait on each other either.

What is due: a raw row whose timestamp is before ``now - raw``; a minute or an hour that ended
at or before ``now - minutes`` (``now - hours``), i.e. all of it is older than its retention.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

_RAW = """
DELETE FROM connector_metrics WHERE id = ANY(ARRAY(
    SELECT id FROM connector_metrics WHERE timestamp < $1 LIMIT $2 FOR UPDATE SKIP LOCKED))
"""
# Rollups: by row address (the primary key is two columns); the rows are locked by the
# subquery, so their addresses hold until the delete.
_ROLLUP = """
DELETE FROM {table} WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM {table} WHERE bucket <= $1::timestamptz - interval '{size}' LIMIT $2
    FOR UPDATE SKIP LOCKED))
"""
_MINUTES = _ROLLUP.format(table="connector_metric_minutes", size="1 minute")
_HOURS = _ROLLUP.format(table="connector_metric_hours", size="1 hour")


@dataclass(frozen=True)
class Retention:
    raw: timedelta
    minutes: timedelta
    hours: timedelta


async def delete_batches(
    conn: asyncpg.Connection, statement: str, cutoff: datetime, *, batch: int
) -> int:
    """Run a batched delete until nothing is due; ``conn`` must not be in a transaction (each
    statement commits on its own). Returns how many rows went."""
    total = 0
    while True:
        status = await conn.execute(statement, cutoff, batch)
        deleted = int(status.split()[-1])
        total += deleted
        if deleted < batch:
            return total


async def run(
    conn: asyncpg.Connection, retention: Retention, *, batch: int, now: datetime | None = None
) -> dict[str, int]:
    """Delete what is due (``now``: the database's clock unless given); returns the counts."""
    if now is None:
        now = await conn.fetchval("SELECT now()")
    return {
        "raw": await delete_batches(conn, _RAW, now - retention.raw, batch=batch),
        "minutes": await delete_batches(conn, _MINUTES, now - retention.minutes, batch=batch),
        "hours": await delete_batches(conn, _HOURS, now - retention.hours, batch=batch),
    }
