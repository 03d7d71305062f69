"""The background loop of the call history: the rollups every ``rollup_seconds``, retention every
``retention_seconds``. Correct with several processes or replicas: the rollups take an advisory
lock (``pg_try_advisory_xact_lock``, one process at a time), retention deletes with ``FOR UPDATE
SKIP LOCKED`` (see rollup.py and retention.py). The database being down costs a warning and a
tick; cancellation stops it between two statements."""

from __future__ import annotations

import asyncio
import time
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
    kept = retention_of(settings)
    lookback = timedelta(minutes=settings.rollup_lookback_minutes)
    next_retention = time.monotonic()
    while True:
        try:
            async with db.connection() as conn:
                await rollup.run(conn, lookback=lookback, raw_retention=kept.raw)
        except Exception as exc:  # the database may be down: the next tick catches up
            log.warning("metric_rollup_failed", error=type(exc).__name__)
        if time.monotonic() >= next_retention:
            next_retention = time.monotonic() + settings.retention_seconds
            try:
                async with db.connection() as conn:
                    deleted = await retention.run(conn, kept, batch=settings.retention_batch_rows)
                if any(deleted.values()):
                    log.info("metric_history_expired", **deleted)
            except Exception as exc:
                log.warning("metric_retention_failed", error=type(exc).__name__)
        await asyncio.sleep(settings.rollup_seconds)
