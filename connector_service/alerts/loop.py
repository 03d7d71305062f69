"""The evaluation loop: every ``alerts_evaluate_seconds``, one process at a time.

Each tick is one transaction that first takes ``pg_try_advisory_xact_lock(LOCK_KEY)``: with
several uvicorn workers or replicas one evaluates and the others skip the tick (the evaluation
is stateless, read from the rollups and the open alerts, so whichever process runs next goes on
where the last one was). The database being down costs a warning and a tick; cancellation (the
service stopping) ends it, rolling back an evaluation under way.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import structlog

from common.db import Database
from connector_service.alerts import repository
from connector_service.alerts.detector import Rules
from connector_service.alerts.evaluate import Outcome, evaluate
from connector_service.settings import ConnectorServiceSettings

log = structlog.get_logger(component="connector_service.alerts")
LOCK_KEY = 0x5EED_0019_0003  # the evaluation's advisory lock (a constant no one else uses)


def rules_of(settings: ConnectorServiceSettings) -> Rules:
    return Rules(
        window_minutes=settings.alerts_window_minutes, min_calls=settings.alerts_min_calls,
        open_after=settings.alerts_open_after, resolve_after=settings.alerts_resolve_after,
    )  # fmt: skip


async def tick(
    db: Database, *, rules: Rules, settle: timedelta, now: datetime | None = None
) -> Outcome | None:
    """One evaluation, unless another process holds the lock (None)."""
    async with db.connection() as conn, conn.transaction():
        if not await repository.try_lock(conn, LOCK_KEY):
            return None
        return await evaluate(conn, now=now or datetime.now(UTC), rules=rules, settle=settle)


async def run_forever(db: Database, settings: ConnectorServiceSettings) -> None:
    rules = rules_of(settings)
    settle = timedelta(seconds=settings.alerts_settle_seconds)
    while True:
        try:
            outcome = await tick(db, rules=rules, settle=settle)
            if outcome and (outcome.opened or outcome.resolved or outcome.failed):
                log.info("alerts_evaluated", installs=outcome.installs,
                         opened=len(outcome.opened), resolved=len(outcome.resolved),
                         failed=outcome.failed)  # fmt: skip
        except Exception as exc:  # the database may be down: try again next tick
            log.warning("alerts_evaluation_failed", error=type(exc).__name__)
        await asyncio.sleep(settings.alerts_evaluate_seconds)
