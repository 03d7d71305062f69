"""The background loop of the call history: the rollups every ``rollup_seconds``, retention every
``retention_seconds``. Correct with several processes or replicas: the rollups take an advisory
lock (``pg_try_advisory_xact_lock``, one process at a time), retention deletes with ``FOR UPDATE
SKIP LOCKED`` (see rollup.py and retention.py). The database being down costs a warning and a
tick; cancellation stops it between two statements."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog

from common.db import Database
from connector_service.metrics import retention, rollup
from connector_service.settings import ConnectorServiceSettings

log = structlog.get_logger(component="connector_service.metrics.jobs")


def retention_of(settings: ConnectorServiceSettings) -> retention.Retention:
    return retention.Retention(
        raw=timedelta(days=settings.metrics_raw_retention_days),
        minutes=timedelta(days=settings.metrics_minute_retention_days),
        hours=timedelta(days=settings.metrics_hour_retention_days),
    )


async def run_forever(db: Database, settings: ConnectorServiceSettings) -> None:
    """Both jobs, side by side: a long retention run (the first after an upgrade, say) does not
    hold the rollups back."""
    kept = retention_of(settings)
    await asyncio.gather(
        _rollups(db, lookback=timedelta(minutes=settings.rollup_lookback_minutes),
                 raw_retention=kept.raw, every=settings.rollup_seconds),
        _retention(db, kept, batch=settings.retention_batch_rows,
                   every=settings.retention_seconds),
    )  # fmt: skip


async def _rollups(
    db: Database, *, lookback: timedelta, raw_retention: timedelta, every: float
) -> None:
    while True:
        try:
            async with db.connection() as conn:
                await rollup.run(conn, lookback=lookback, raw_retention=raw_retention)
        except Exception as exc:  # the database may be down: the next run catches up
            log.warning("metric_rollup_failed", error=type(exc).__name__)
        await asyncio.sleep(every)


async def _retention(db: Database, kept: retention.Retention, *, batch: int, every: float) -> None:
    while True:
        try:
            async with db.connection() as conn:
                deleted = await retention.run(conn, kept, batch=batch)
            if any(deleted.values()):
                log.info("metric_history_expired", **deleted)
        except Exception as exc:
            log.warning("metric_retention_failed", error=type(exc).__name__)
        await asyncio.sleep(every)
