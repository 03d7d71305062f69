"""The background work of sync: pushing the outbox as changes arrive, and scheduled runs."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from connector_service.integrations import calls
from connector_service.sync import repository
from connector_service.sync.engine import SyncEngine, SyncRunning

log = structlog.get_logger(component="connector_service.sync.loops")
PUSH_EVERY = 0.5
SCHEDULE_EVERY = 5.0


async def push_forever(engine: SyncEngine) -> None:
    """Write due outbox rows of every install, skipping installs a run is syncing (the run
    pushes them itself)."""
    while True:
        try:
            async with engine.db.connection() as conn:
                due = await repository.integrations_due(conn, limit=50)
            for integration_id in due:
                if integration_id in engine.running:
                    continue
                await _push_one(engine, integration_id)
        except Exception as exc:  # the database may be down: try again shortly
            log.warning("sync_push_loop_failed", error=type(exc).__name__)
        await asyncio.sleep(PUSH_EVERY)


async def _push_one(engine: SyncEngine, integration_id) -> None:  # type: ignore[no-untyped-def]
    async with engine.db.connection() as conn:
        tenant_id = await conn.fetchval(
            "SELECT tenant_id FROM integration_connectors WHERE id = $1 AND status <> 'disabled'",
            integration_id,
        )
    if tenant_id is None:
        return
    try:
        target = await calls.load_target(engine.db, tenant_id, integration_id)
        await engine.catch_up_and_push(target)
    except Exception as exc:
        log.info("sync_push_skipped", integration_id=str(integration_id),
                 error=type(exc).__name__, detail=str(exc)[:300])  # fmt: skip


async def schedule_forever(engine: SyncEngine) -> None:
    """Start the runs whose interval has passed (one at a time per install, across replicas)."""
    while True:
        try:
            async with engine.db.connection() as conn:
                due = await repository.scheduled_due(conn, limit=10)
            for row in due:
                if row["id"] not in engine.running:
                    with contextlib.suppress(SyncRunning):
                        engine.start(row["tenant_id"], row["id"], "scheduled")
        except Exception as exc:
            log.warning("sync_schedule_failed", error=type(exc).__name__)
        engine.store.sweep()  # documents idle since their last use, past the memory budget
        await asyncio.sleep(SCHEDULE_EVERY)
