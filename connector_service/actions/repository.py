from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg

_RUN = "id, integration_id, action, request_hash, state, response_status, response_body, started_at"


async def claim(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    key: str,
    integration_id: uuid.UUID,
    action: str,
    request_hash: bytes,
    actor: str,
    ttl: timedelta,
    stale_after: timedelta,
) -> tuple[bool, asyncpg.Record]:
    """Take the key for this request, or return who holds it. ``(True, run)`` means the caller
    runs the action: the key was free, had expired, or was held by a run silent for longer than
    ``stale_after`` (a crashed replica) with the same request. A taken-over run gets a new id,
    so the late original can no longer complete or release it. ``(False, None)``: the holder
    let go between the two statements; ask again."""
    row = await conn.fetchrow(
        "INSERT INTO action_runs (tenant_id, idempotency_key, integration_id, action,"
        " request_hash, actor, expires_at) VALUES ($1, $2, $3, $4, $5, $6, now() + $7::interval)"
        " ON CONFLICT (tenant_id, idempotency_key) DO UPDATE"
        " SET id = gen_random_uuid(), integration_id = EXCLUDED.integration_id,"
        " action = EXCLUDED.action,"
        " request_hash = EXCLUDED.request_hash, actor = EXCLUDED.actor, state = 'running',"
        " response_status = NULL, response_body = NULL, started_at = now(),"
        " completed_at = NULL, expires_at = EXCLUDED.expires_at"
        " WHERE action_runs.expires_at < now() OR (action_runs.state = 'running'"
        " AND action_runs.started_at < now() - $8::interval AND action_runs.request_hash = $5)"
        f" RETURNING {_RUN}",
        tenant_id, key, integration_id, action, request_hash, actor, ttl, stale_after,
    )  # fmt: skip
    if row is not None:
        return True, row
    held = await conn.fetchrow(
        f"SELECT {_RUN} FROM action_runs WHERE tenant_id = $1 AND idempotency_key = $2",
        tenant_id,
        key,
    )
    return False, held  # type: ignore[return-value]


async def complete(
    conn: asyncpg.Connection, run_id: uuid.UUID, *, status: int, body: dict[str, Any]
) -> None:
    await conn.execute(
        "UPDATE action_runs SET state = 'completed', response_status = $2, response_body = $3,"
        " completed_at = now() WHERE id = $1",
        run_id,
        status,
        body,
    )


async def release(conn: asyncpg.Connection, run_id: uuid.UUID) -> None:
    """Free the key after a failure worth retrying: the next request with it runs again."""
    await conn.execute("DELETE FROM action_runs WHERE id = $1 AND state = 'running'", run_id)


async def delete_expired(conn: asyncpg.Connection, *, limit: int) -> int:
    result = await conn.execute(
        "DELETE FROM action_runs WHERE id IN (SELECT id FROM action_runs"
        " WHERE expires_at < now() LIMIT $1)",
        limit,
    )
    return int(result.split()[-1])
