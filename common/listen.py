"""LISTEN on a PostgreSQL channel for as long as a service runs.

A dedicated connection (never a pooled one: LISTEN is session state), opened again with backoff
whenever it drops, and pinged every few seconds so a dead one is noticed. ``on_listening`` runs
each time listening (re)starts: whatever was notified while it was down is lost, so the caller
catches up there; ``on_lost`` runs each time it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncpg
import structlog

log = structlog.get_logger(component="seedos.listen")

PING_SECONDS = 10.0
MAX_BACKOFF = 5.0


async def listen_forever(
    dsn: str,
    channel: str,
    on_notify: Callable[[str], None],
    *,
    application_name: str,
    on_listening: Callable[[], None] = lambda: None,
    on_lost: Callable[[], None] = lambda: None,
) -> None:
    """Call ``on_notify(payload)`` for every notification on ``channel``, until cancelled."""
    backoff = 0.2
    while True:
        conn: asyncpg.Connection | None = None
        listening = False
        try:
            conn = await asyncpg.connect(
                dsn, timeout=5, server_settings={"application_name": application_name}
            )
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _c, lost=lost: lost.set())
            await conn.add_listener(channel, lambda _c, _pid, _ch, payload: on_notify(payload))
            listening = True
            on_listening()
            backoff = 0.2
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), PING_SECONDS)
                if not lost.is_set():
                    await conn.fetchval("SELECT 1", timeout=5)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("listen_failed", channel=channel, error=type(exc).__name__)
        finally:
            if listening:
                on_lost()
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.terminate()
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF)
