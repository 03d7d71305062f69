"""Every authentication or authorization failure at the gateway: logged and counted, by how
the caller authenticated (``method``) and a short, bounded ``reason``; and where the tenant is
known, audited in its trail (``auth.refused``), at most once a minute per (tenant, caller,
reason) so that a flood of refusals cannot flood the trail."""

from __future__ import annotations

import asyncio
import time
import uuid

import structlog
from cachetools import TTLCache
from prometheus_client import Counter

from common import audit, db
from common.errors import SeedosError

AUTH_FAILURES = Counter(
    "seedos_auth_failures",
    "Authentication and authorization failures at the gateway, by method and reason.",
    ["method", "reason"],
)
log = structlog.get_logger(component="seedos.gateway.auth")

METHODS = frozenset({"api_key", "session", "jwt", "oidc", "development", "invitation", "none"})
AUDIT_WINDOW_SECONDS = 60.0


def record(method: str, reason: str, **context: object) -> None:
    """Count and log one failure. ``reason`` is one of a fixed set of words chosen by the code
    (never caller input), so the label stays bounded."""
    AUTH_FAILURES.labels(method if method in METHODS else "none", reason).inc()
    log.info("auth_failed", method=method, reason=reason, **context)


class FailureAudit:
    """Writes ``auth.refused`` entries in the background, on a connection of its own (the
    request that failed has none, and must not wait for the trail)."""

    def __init__(self, database: db.Database, *, window: float = AUDIT_WINDOW_SECONDS) -> None:
        self._db = database
        self._recent: TTLCache[tuple, bool] = TTLCache(
            maxsize=10_000, ttl=window, timer=time.monotonic
        )
        self._tasks: set[asyncio.Task[None]] = set()

    def refused(
        self,
        *,
        tenant_id: uuid.UUID,
        actor: str,
        reason: str,
        path: str,
        request_id: str | None,
    ) -> None:
        key = (tenant_id, actor, reason)
        if key in self._recent:
            return
        self._recent[key] = True
        task = asyncio.create_task(self._write(tenant_id, actor, reason, path, request_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(
        self, tenant_id: uuid.UUID, actor: str, reason: str, path: str, request_id: str | None
    ) -> None:
        try:
            async with self._db.connection() as conn, conn.transaction():
                await audit.record(
                    conn, tenant_id=tenant_id, actor=actor, action="auth.refused",
                    payload={"reason": reason, "path": path[:200]}, request_id=request_id,
                )  # fmt: skip
        except (SeedosError, *db.UNAVAILABLE) as exc:
            log.warning("auth_refusal_not_audited", reason=reason, error=type(exc).__name__)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
