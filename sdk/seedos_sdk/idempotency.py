"""Idempotent actions: the same Idempotency-Key with the same input gets the stored result; the
same key with different input is refused. Kept in memory per process (connectors are stateless
services; a replica restart forgets keys, which the platform's own idempotency store covers)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache

from seedos_sdk.errors import RequestInvalid


def fingerprint(action: str, data: Any) -> str:
    canonical = json.dumps([action, data], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class _Entry:
    fingerprint: str
    done: asyncio.Future[dict[str, Any]]


class IdempotencyStore:
    def __init__(self, *, ttl_seconds: float = 24 * 3600, max_keys: int = 100_000) -> None:
        self._entries: TTLCache[str, _Entry] = TTLCache(max_keys, ttl_seconds, timer=time.monotonic)

    async def run(
        self,
        key: str,
        action: str,
        data: Any,
        run: Callable[[], Awaitable[dict[str, Any]]],
        *,
        scope: str = "",
    ) -> tuple[dict[str, Any], bool]:
        """Run once per key; returns (result, replayed). ``scope`` separates installs (another
        tenant's identical key and input must not get this one's result). A failed run is
        forgotten, so the caller may retry it with the same key."""
        key = f"{scope}\x00{key}"
        fp = fingerprint(action, data)
        entry = self._entries.get(key)
        if entry is not None:
            if entry.fingerprint != fp:
                raise RequestInvalid(
                    "this Idempotency-Key was used with a different action or input",
                    code="idempotency_key_reused",
                )
            return await asyncio.shield(entry.done), True
        done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._entries[key] = _Entry(fp, done)
        try:
            result = await run()
        except BaseException as exc:
            self._entries.pop(key, None)
            done.set_exception(exc)
            done.exception()  # retrieved: concurrent waiters re-raise it themselves
            raise
        done.set_result(result)
        return result, False
