from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg


async def insert(
    conn: asyncpg.Connection,
    ticket_hash: bytes,
    *,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    credential: bytes,
    ttl_seconds: int,
) -> datetime:
    """Store a ticket's hash; returns when it expires."""
    return await conn.fetchval(
        "INSERT INTO ws_tickets (ticket_hash, tenant_id, integration_id, credential, expires_at)"
        " VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) RETURNING expires_at",
        ticket_hash,
        tenant_id,
        integration_id,
        credential,
        ttl_seconds,
    )


async def take(conn: asyncpg.Connection, ticket_hash: bytes) -> asyncpg.Record | None:
    """Consume a ticket (whatever else happens, it cannot be used again); None if unknown."""
    return await conn.fetchrow(
        "DELETE FROM ws_tickets WHERE ticket_hash = $1"
        " RETURNING tenant_id, integration_id, credential, expires_at > now() AS valid",
        ticket_hash,
    )


async def purge_expired(conn: asyncpg.Connection) -> int:
    """Delete tickets past their expiry (never redeemed); how many."""
    result = await conn.execute("DELETE FROM ws_tickets WHERE expires_at < now()")
    return int(result.split()[-1])
