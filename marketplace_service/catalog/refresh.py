"""What the catalog counts again every few seconds: installs per entry (the popularity sort),
and the title vocabulary (typo-tolerant search) if the catalog changed without this replica
reading it (facets.py reads it when PostgreSQL notifies a change; this covers a lost
notification)."""

from __future__ import annotations

import asyncio

import structlog

from common.db import Database
from marketplace_service.catalog import repository
from marketplace_service.catalog.fuzzy import Vocabulary

log = structlog.get_logger(component="marketplace.refresh")


async def refresh(database: Database, vocabulary: Vocabulary) -> int:
    """Returns how many install counts changed. The titles are read again only when the
    catalog changed (its fingerprint), and taken apart in a thread: for 10,000 entries that
    is 50 ms of Python the event loop would otherwise stop for."""
    titles = None
    async with database.connection() as conn:
        changed = await repository.refresh_install_counts(conn)
        version = await repository.catalog_version(conn)
        if version != vocabulary.version:
            titles = await repository.titles(conn)
    if titles is not None:
        await asyncio.to_thread(vocabulary.replace, titles, version=version)
    return changed


async def refresh_once(database: Database, vocabulary: Vocabulary) -> None:
    """One turn; a failure (the database down) is logged and left for the next turn."""
    try:
        changed = await refresh(database, vocabulary)
        if changed:
            log.info("install_counts_refreshed", changed=changed)
    except Exception as exc:
        log.warning("catalog_refresh_failed", error=type(exc).__name__)


async def refresh_forever(database: Database, vocabulary: Vocabulary, *, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        await refresh_once(database, vocabulary)
