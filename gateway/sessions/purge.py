"""Old sessions, abandoned sign-ins and expired WebSocket tickets are deleted now and then
(each replica tries; the statements are idempotent)."""

from __future__ import annotations

import asyncio

import structlog

from common import db
from common.errors import SeedosError
from gateway.sessions import repository
from gateway.ws_tickets import repository as ws_tickets

log = structlog.get_logger(component="seedos.gateway.sessions")
KEEP_DAYS = 30  # ended sessions stay listed in the audit trail; rows go after this
EVERY_SECONDS = 3600.0


async def purge_periodically(database: db.Database, *, every: float = EVERY_SECONDS) -> None:
    while True:
        try:
            async with database.connection() as conn:
                deleted = await repository.purge(conn, keep_days=KEEP_DAYS)
                tickets = await ws_tickets.purge_expired(conn)
            if deleted or tickets:
                log.info("sessions_purged", deleted=deleted, expired_tickets=tickets)
        except (SeedosError, *db.UNAVAILABLE) as exc:
            log.warning("sessions_purge_failed", error=type(exc).__name__)
        await asyncio.sleep(every)
