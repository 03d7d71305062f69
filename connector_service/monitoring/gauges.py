"""Gauges read from the database every ``monitoring_gauge_seconds``: the sync outbox (how many
changes wait, how old the oldest is), the dead letters held, and each service's sync lag.

Every process (each uvicorn worker, each replica) runs the loop and publishes the same values:
it only reads, so it takes no lock (neither ``pg_try_advisory_xact_lock`` nor ``SKIP LOCKED`` is
needed), and a replica that stops takes nothing with it. In multiprocess mode the most recent
value wins (``mostrecent``); across replicas, rules take ``max by (service)`` (prometheus/rules/).
A service that drops out of a query is set to 0 rather than left at its last value.
"""

from __future__ import annotations

import asyncio

import structlog
from prometheus_client import Gauge

from common.db import Database
from connector_service.monitoring import repository

log = structlog.get_logger(component="connector_service.monitoring")

OUTBOX_PENDING = Gauge(
    "seedos_sync_outbox_pending",
    "Platform-side changes waiting to be pushed to the external system, by connector service"
    " (installs not disabled, tenants not suspended).",
    ["service"],
    multiprocess_mode="mostrecent",
)
OUTBOX_OLDEST = Gauge(
    "seedos_sync_outbox_oldest_seconds",
    "Age of the oldest change waiting in the outbox, by connector service (0: none waiting).",
    ["service"],
    multiprocess_mode="mostrecent",
)
DEAD_LETTERS = Gauge(
    "seedos_sync_dead_letters_held",
    "Changes dead-lettered and held (neither retried nor discarded yet), by connector service.",
    ["service"],
    multiprocess_mode="mostrecent",
)
LAG = Gauge(
    "seedos_sync_lag_seconds",
    "Longest time an active scheduled install of the service is past its sync interval since"
    " its last successful sync (or since it was installed); 0 when every one is on time.",
    ["service"],
    multiprocess_mode="mostrecent",
)
REFRESH_FAILURES = Gauge(
    "seedos_monitoring_refresh_failing",
    "1 while the last read of the database-derived gauges failed (their values are stale).",
    multiprocess_mode="mostrecent",
)


class DatabaseGauges:
    """Sets the gauges from the database; remembers which services it set, to zero them."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._seen: dict[Gauge, set[str]] = {g: set() for g in (OUTBOX_PENDING, OUTBOX_OLDEST,
                                                                 DEAD_LETTERS, LAG)}  # fmt: skip

    async def refresh(self) -> None:
        async with self.db.connection() as conn:
            outbox = await repository.outbox_by_service(conn)
            lag = await repository.lag_by_service(conn)
        self._publish(OUTBOX_PENDING, {r["service_name"]: r["pending"] for r in outbox})
        self._publish(OUTBOX_OLDEST, {r["service_name"]: r["oldest_seconds"] for r in outbox})
        self._publish(DEAD_LETTERS, {r["service_name"]: r["dead"] for r in outbox})
        self._publish(LAG, {r["service_name"]: r["lag_seconds"] for r in lag})

    def _publish(self, gauge: Gauge, values: dict[str, float]) -> None:
        for service in self._seen[gauge] - values.keys():
            gauge.labels(service).set(0)
        for service, value in values.items():
            gauge.labels(service).set(value)
        self._seen[gauge] |= values.keys()

    async def run_forever(self, every: float) -> None:
        """Refresh now and every ``every`` seconds; a failed read (the database down) is
        logged, flagged in ``seedos_monitoring_refresh_failing`` and tried again next tick."""
        while True:
            try:
                await self.refresh()
                REFRESH_FAILURES.set(0)
            except Exception as exc:
                REFRESH_FAILURES.set(1)
                log.warning("monitoring_gauges_failed", error=type(exc).__name__)
            await asyncio.sleep(every)
