from __future__ import annotations

import uuid

import asyncpg

from common.crypto import Envelope


async def upsert(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    field: str,
    envelope: Envelope,
) -> None:
    await conn.execute(
        "INSERT INTO credentials (tenant_id, integration_id, field, key_id, wrapped_key, nonce,"
        " ciphertext) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (integration_id, field) DO UPDATE SET key_id = EXCLUDED.key_id,"
        " wrapped_key = EXCLUDED.wrapped_key, nonce = EXCLUDED.nonce,"
        " ciphertext = EXCLUDED.ciphertext",
        tenant_id,
        integration_id,
        field,
        envelope.key_id,
        envelope.wrapped_key,
        envelope.nonce,
        envelope.ciphertext,
    )


async def for_integration(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, integration_id: uuid.UUID
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT field, key_id, wrapped_key, nonce, ciphertext FROM credentials"
        " WHERE tenant_id = $1 AND integration_id = $2 ORDER BY field",
        tenant_id,
        integration_id,
    )


async def delete_for_integration(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, integration_id: uuid.UUID
) -> int:
    result = await conn.execute(
        "DELETE FROM credentials WHERE tenant_id = $1 AND integration_id = $2",
        tenant_id,
        integration_id,
    )
    return int(result.split()[-1])


async def wrapped_by_other_keys(
    conn: asyncpg.Connection, *, primary: str, limit: int
) -> list[asyncpg.Record]:
    """A batch of envelopes not yet wrapped by the primary key, locked for re-wrapping."""
    return await conn.fetch(
        "SELECT id, tenant_id, integration_id, field, key_id, wrapped_key, nonce, ciphertext"
        " FROM credentials WHERE key_id <> $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
        primary,
        limit,
    )


async def set_wrapping(
    conn: asyncpg.Connection, *, credential_id: uuid.UUID, key_id: str, wrapped_key: bytes
) -> None:
    await conn.execute(
        "UPDATE credentials SET key_id = $2, wrapped_key = $3 WHERE id = $1",
        credential_id,
        key_id,
        wrapped_key,
    )
