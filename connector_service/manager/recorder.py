"""Per-call metrics: Prometheus at once, connector_metrics rows in batches off the request path.

Prometheus labels are the service name (bounded by the catalog) and the operation, plus the
error class on the error counter; never tenant or install ids. Those go to connector_metrics,
which the recommendations read for connector health: one ``latency_ms`` row per call and one
``error`` row per failed call, queued in memory and written by a background task every
``flush_seconds`` (or sooner when ``batch_size`` rows wait) in one statement. When the queue is
full (the database slow or down) the oldest rows are dropped and counted, never the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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
# One statement per batch. Rows of a tenant deleted meanwhile are dropped; those of an install
# deleted meanwhile are kept with connector_id NULL (the foreign key's ON DELETE SET NULL).
_INSERT = """
INSERT INTO connector_metrics (tenant_id, connector_id, connector_name, service_name,
                               metric_type, value, labels, timestamp)
SELECT r.tenant_id, ic.id, r.connector_name, r.service_name, r.metric_type, r.value, r.labels,
       r.ts
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::float8[],
            $7::jsonb[], $8::timestamptz[])
     AS r(tenant_id, connector_id, connector_name, service_name, metric_type, value, labels, ts)
JOIN tenants t ON t.id = r.tenant_id
LEFT JOIN integration_connectors ic ON ic.id = r.connector_id
"""


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
        labels = {"operation": call.operation, "outcome": call.error_class or "ok"}
        now = datetime.now(UTC)
        base = (call.tenant_id, call.connector_id, call.connector_name, call.service_name)
        self._append((*base, "latency_ms", call.seconds * 1000, labels, now))
        if call.error_class is not None:
            CALL_ERRORS.labels(call.service_name, call.operation, call.error_class).inc()
            self._append((*base, "error", 1.0, labels, now))
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
        """Write what is queued now; returns the number of rows written."""
        written = 0
        while self._rows:
            batch = [self._rows.popleft() for _ in range(min(self._batch_size, len(self._rows)))]
            try:
                async with self._db.connection() as conn:
                    columns = (list(column) for column in zip(*batch, strict=True))
                    await conn.execute(_INSERT, *columns)
            except BaseException:
                self._requeue(batch)
                raise
            written += len(batch)
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
