"""Per-call metrics: Prometheus at once, connector_metrics rows in batches off the request path.

Prometheus labels are the service name (bounded by the catalog) and the operation, plus the
error class on the error counter; never tenant or install ids. Those go to connector_metrics,
which the rollup job (connector_service/metrics/rollup.py) folds into per-install minutes and
hours: one ``latency_ms`` row per call, one ``error`` row per failed call and one ``records``
row per call that read or wrote records (its value the count), queued in memory and written by
a background task every ``flush_seconds`` (or sooner when ``batch_size`` rows wait) with COPY.
When the queue is full (the database slow or down) the oldest rows are dropped and counted,
never the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from prometheus_client import Counter, Gauge, Histogram

from common.db import Database

log = structlog.get_logger(component="connector_service.recorder")

CALL_SECONDS = Histogram(
    "seedos_connector_call_duration_seconds",
    "Calls from connector_service to connectors, by connector service and operation.",
    ["service", "operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CALL_ERRORS = Counter(
    "seedos_connector_call_errors_total",
    "Failed connector calls by class: transport, timeout, retryable, permanent, auth,"
    " circuit_open, not_allowed, invalid_response.",
    ["service", "operation", "error_class"],
)
CALL_RECORDS = Counter(
    "seedos_connector_call_records_total",
    "Records read or written through connector calls.",
    ["service", "operation"],
)
CALL_RETRIES = Counter(
    "seedos_connector_call_retries_total", "Connector calls retried.", ["service", "operation"]
)
OPEN_CIRCUITS = Gauge(
    "seedos_connector_open_circuits",
    "Installed connectors whose circuit is open or half-open in this process.",
    multiprocess_mode="livesum",
)
ROWS_DROPPED = Counter(
    "seedos_connector_metric_rows_dropped_total",
    "connector_metrics rows dropped because the write queue was full.",
)
# A batch is copied (COPY, binary) into a temporary table of the connection, then moved in one
# statement that drops the rows of a tenant deleted meanwhile and keeps those of an install
# deleted meanwhile with connector_id NULL (as the foreign key's ON DELETE SET NULL would have).
# Copying straight into connector_metrics would fail the whole batch on one such row; and
# asyncpg's COPY cannot encode jsonb through the pool's text codec, so the labels are built here.
# bench/metrics_history.py measures this against the unnest INSERT it replaced.
STAGING = "connector_metrics_staging"
_STAGING_COLUMNS = (
    "tenant_id", "connector_id", "connector_name", "service_name", "metric_type", "value",
    "operation", "outcome", "ts",
)  # fmt: skip
# Metric rows need not wait for their commit to reach the disk: a crash of PostgreSQL may lose
# the last fraction of a second of them (never consistency), as a full queue would.
_OPEN = f"""
BEGIN;
SET LOCAL synchronous_commit TO off;
CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING} (
    tenant_id UUID, connector_id UUID, connector_name TEXT, service_name TEXT,
    metric_type TEXT, value DOUBLE PRECISION, operation TEXT, outcome TEXT, ts TIMESTAMPTZ
) ON COMMIT DELETE ROWS
"""
_MOVE = f"""
WITH moved AS (
    INSERT INTO connector_metrics (tenant_id, connector_id, connector_name, service_name,
                                   metric_type, value, labels, timestamp)
    SELECT s.tenant_id, ic.id, s.connector_name, s.service_name, s.metric_type, s.value,
           jsonb_build_object('operation', s.operation, 'outcome', s.outcome), s.ts
    FROM {STAGING} s
    JOIN tenants t ON t.id = s.tenant_id
    LEFT JOIN integration_connectors ic ON ic.id = s.connector_id
    RETURNING 1
)
SELECT count(*) FROM moved
"""
# A tenant or install deleted after the move's snapshot and before its foreign-key checks fails
# it; the next attempt's snapshot no longer sees it.
_MOVE_ATTEMPTS = 3


@dataclass(frozen=True)
class Call:
    tenant_id: uuid.UUID
    connector_id: uuid.UUID
    connector_name: str
    service_name: str
    operation: str
    seconds: float
    error_class: str | None = None
    records: int = 0


class Recorder:
    def __init__(
        self, db: Database, *, flush_seconds: float, batch_size: int, max_queued: int
    ) -> None:
        self._db = db
        self._flush_seconds = flush_seconds
        self._batch_size = batch_size
        self._rows: deque[tuple[Any, ...]] = deque(maxlen=max_queued)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def record(self, call: Call) -> None:
        CALL_SECONDS.labels(call.service_name, call.operation).observe(call.seconds)
        if call.records:
            CALL_RECORDS.labels(call.service_name, call.operation).inc(call.records)
        now = datetime.now(UTC)
        base = (call.tenant_id, call.connector_id, call.connector_name, call.service_name)
        outcome = call.error_class or "ok"
        self._append((*base, "latency_ms", call.seconds * 1000, call.operation, outcome, now))
        if call.error_class is not None:
            CALL_ERRORS.labels(call.service_name, call.operation, call.error_class).inc()
            self._append((*base, "error", 1.0, call.operation, outcome, now))
        if call.records:
            self._append((*base, "records", float(call.records), call.operation, outcome, now))
        if len(self._rows) >= self._batch_size:
            self._wake.set()

    def _append(self, row: tuple[Any, ...]) -> None:
        if len(self._rows) == self._rows.maxlen:
            ROWS_DROPPED.inc()
        self._rows.append(row)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="connector-metrics-writer")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_seconds)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # the rows stay queued; the next tick tries again
                log.warning("connector_metrics_write_failed", error=type(exc).__name__)

    async def flush(self) -> int:
        """Write what is queued now; returns the number of rows written (those of a tenant
        deleted meanwhile are not)."""
        written = 0
        while self._rows:
            batch = [self._rows.popleft() for _ in range(min(self._batch_size, len(self._rows)))]
            try:
                async with self._db.connection() as conn:
                    written += await write(conn, batch)
            except BaseException:
                self._requeue(batch)
                raise
        return written

    def _requeue(self, batch: list[tuple[Any, ...]]) -> None:
        """Put a batch that was not written back in front of the queue. Its rows are older than
        any queued since; where rows that arrived during the write leave too little room, the
        oldest of the batch are dropped and counted (a full deque would drop the newest from the
        other end, silently)."""
        assert self._rows.maxlen is not None
        excess = len(batch) - (self._rows.maxlen - len(self._rows))
        if excess > 0:
            ROWS_DROPPED.inc(excess)
            batch = batch[excess:]
        self._rows.extendleft(reversed(batch))


async def write(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> int:
    """Write queued rows (in ``_STAGING_COLUMNS`` order) in one transaction of its own; returns
    how many were written. ``conn`` must not be in a transaction."""
    for _ in range(_MOVE_ATTEMPTS - 1):
        with contextlib.suppress(asyncpg.ForeignKeyViolationError):
            return await _write_once(conn, rows)
    return await _write_once(conn, rows)


async def _write_once(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> int:
    # Four round trips: open (the transaction, its setting and the staging table at once),
    # copy, move, commit: at 500 rows a batch's fixed cost had been a third of its time.
    await conn.execute(_OPEN)
    try:
        await conn.copy_records_to_table(STAGING, records=rows, columns=_STAGING_COLUMNS)
        moved = await conn.fetchval(_MOVE)
        await conn.execute("COMMIT")
        return moved
    except Exception:
        with contextlib.suppress(Exception):  # a broken connection is the pool's to drop
            await conn.execute("ROLLBACK")
        raise
