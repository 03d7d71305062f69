"""Running a connector's action exactly once per Idempotency-Key.

The key is taken in its own committed statement before the connector is called, so of many
concurrent requests with one key exactly one runs; the others get 409 while it runs, and its
stored answer afterwards. What is stored and replayed: the output, and the connector's final
refusals (4xx). A failure worth retrying (connector down, timeout, circuit open) frees the key,
so retrying with the same key runs again; the key is passed on to the connector, which
de-duplicates a call that did reach it.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from typing import Any

import orjson
import structlog

from common import audit
from common.db import Database
from common.endpoints import EndpointNotAllowed
from common.errors import InvalidRequest, NotFound, error_body
from common.idempotency import InProgress, KeyReused
from connector_service.actions import repository
from connector_service.integrations import calls
from connector_service.manager import errors
from connector_service.manager.manager import ConnectorManager

log = structlog.get_logger(component="connector_service.actions")

# A run silent this long is taken to have died with its replica (longer than any call budget).
STALE_AFTER = timedelta(minutes=10)
# The connector's own final answers: stored and replayed like an output. Refusals of ours
# (disabled, not deployed, address not allowed) are not stored: they change when fixed.
_FINAL = (errors.ConnectorRejected, errors.ConnectorAuthFailed, errors.InvalidConnectorResponse)


class ActionNotFound(NotFound):
    code, title = "action_not_found", "No such action"


class Outcome:
    def __init__(self, status: int, body: dict[str, Any], *, replayed: bool) -> None:
        self.status, self.body, self.replayed = status, body, replayed


def request_hash(integration_id: uuid.UUID, action: str, data: Any) -> bytes:
    try:
        canonical = orjson.dumps([str(integration_id), action, data], option=orjson.OPT_SORT_KEYS)
    except TypeError:  # e.g. an integer beyond 64 bits
        raise InvalidRequest("the input holds a value JSON here cannot carry (an integer"
                             " beyond 64 bits?)", code="invalid_input") from None  # fmt: skip
    return hashlib.sha256(canonical).digest()


async def run(
    db: Database,
    manager: ConnectorManager,
    *,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    action: str,
    data: Any,
    key: str,
    actor: str,
    request_id: str | None,
    instance: str,
    ttl: timedelta,
) -> Outcome:
    target = await calls.load_target(db, tenant_id, integration_id)
    declared = target.manifest.get("actions")
    if isinstance(declared, list) and action not in {a.get("name") for a in declared}:
        raise ActionNotFound(f"{target.service_name} has no action {action!r}")
    manager.admit(target)  # disabled, not deployed, a refused URL: before the key is taken
    digest = request_hash(integration_id, action, data)
    while True:
        async with db.connection() as conn:
            mine, run_row = await repository.claim(
                conn, tenant_id=tenant_id, key=key, integration_id=integration_id,
                action=action, request_hash=digest, actor=actor, ttl=ttl,
                stale_after=STALE_AFTER,
            )  # fmt: skip
        if mine or run_row is not None:
            break
    if not mine:
        if bytes(run_row["request_hash"]) != digest:
            raise KeyReused(
                "this Idempotency-Key was used for a different request in the last"
                f" {ttl.total_seconds() / 3600:g} hours; use a new key"
            )
        if run_row["state"] == "running":
            raise InProgress(
                "the first request with this Idempotency-Key is still running",
                headers={"Retry-After": "1"},
            )
        return Outcome(run_row["response_status"], run_row["response_body"], replayed=True)
    audit = {"target": target, "action": action, "key": key, "actor": actor,
             "request_id": request_id}  # fmt: skip
    try:
        output = await manager.action(target, action, data, idempotency_key=key)
    except _FINAL as exc:
        if isinstance(exc, errors.ConnectorAuthFailed):
            await calls.credentials_refused(db, target, exc)
        body = error_body(exc, instance)
        await _finish(db, run_row["id"], exc.status, body, outcome=exc.code, **audit)
        return Outcome(exc.status, body, replayed=False)
    except BaseException as exc:
        # worth retrying (or ours): free the key so a retry with it runs again
        await _release(db, run_row["id"], exc, **audit)
        if isinstance(exc, EndpointNotAllowed):
            await calls.set_status(db, target, "error", f"endpoint not allowed: {exc.detail}",
                                   last_error=exc.detail)  # fmt: skip
        raise
    body = {"output": output.get("output")}
    await _finish(db, run_row["id"], 200, body, outcome="ok", **audit)
    return Outcome(200, body, replayed=False)


async def _finish(
    db: Database,
    run_id: uuid.UUID,
    status: int,
    body: dict[str, Any],
    *,
    outcome: str,
    **audited: Any,
) -> None:
    """Store the answer and audit the call in one transaction."""
    async with db.connection() as conn, conn.transaction():
        await repository.complete(conn, run_id, status=status, body=body)
        await _audit(conn, status=status, outcome=outcome, **audited)


async def _release(db: Database, run_id: uuid.UUID, exc: BaseException, **audited: Any) -> None:
    """Free the key and audit the failed call, best effort (the database may be what failed)."""
    try:
        async with db.connection() as conn, conn.transaction():
            await repository.release(conn, run_id)
            await _audit(conn, status=getattr(exc, "status", 500),
                         outcome=getattr(exc, "code", "internal_error"), **audited)  # fmt: skip
    except Exception as failure:
        log.warning("action_release_failed", error=type(failure).__name__)


async def _audit(
    conn: Any,
    *,
    target: calls.Target,
    action: str,
    key: str,
    actor: str,
    request_id: str | None,
    status: int,
    outcome: str,
) -> None:
    await audit.record(
        conn, tenant_id=target.tenant_id, actor=actor, action="integration.action_called",
        target=f"integration:{target.id}",
        payload={"integration_id": str(target.id), "action": action, "outcome": outcome,
                 "status": status, "idempotency_key": key},
        request_id=request_id,
    )  # fmt: skip


async def sweep(db: Database, *, batch: int = 1000) -> int:
    """Delete expired keys, a batch per statement; returns how many went."""
    total = 0
    while True:
        async with db.connection() as conn:
            gone = await repository.delete_expired(conn, limit=batch)
        total += gone
        if gone < batch:
            return total
