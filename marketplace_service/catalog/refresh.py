"""What the catalog counts again every few seconds: installs per entry (the popularity sort)
and the title vocabulary (typo-tolerant search)."""

from __future__ import annotations

import asyncio

import structlog

from common.db import Database
from marketplace_service.catalog import repository
from marketplace_service.catalog.fuzzy import Vocabulary

log = structlog.get_logger(component="marketplace.refresh")


async def refresh(database: Database, vocabulary: Vocabulary) -> int:
    """Returns how many install counts changed."""
    async with database.connection() as conn:
        changed = await repository.refresh_install_counts(conn)
        vocabulary.replace(await repository.title_words(conn))
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
