from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

_COLUMNS = (
    "id, tenant_id, name, role, prefix, purpose, created_by, created_at, expires_at,"
    " last_used_at, revoked_at"
)
_LIVE = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"


async def insert(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    name: str,
    role: str,
    prefix: str,
    key_hash: bytes,
    purpose: str,
    created_by: str | None,
    expires_at: datetime | None,
) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO api_keys (tenant_id, name, role, prefix, key_hash, purpose, created_by,"
        f" expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {_COLUMNS}",
        tenant_id,
        name,
        role,
        prefix,
        key_hash,
        purpose,
        created_by,
        expires_at,
    )


async def list_for_tenant(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, *, include_revoked: bool
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_COLUMNS} FROM api_keys WHERE tenant_id = $1"
        " AND ($2 OR revoked_at IS NULL) ORDER BY created_at DESC, id",
        tenant_id,
        include_revoked,
    )


async def revoke(
    conn: asyncpg.Connection, key_id: uuid.UUID, *, tenant_id: uuid.UUID | None
) -> asyncpg.Record | None:
    """Revoke a key (of this tenant, when given). Revoking twice keeps the first time;
    ``newly_revoked`` says whether this call did it."""
    return await conn.fetchrow(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())"
        " WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)"
        f" RETURNING {_COLUMNS}, revoked_at = now() AS newly_revoked",
        key_id,
        tenant_id,
    )


async def revoke_purpose(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, purpose: str
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "UPDATE api_keys SET revoked_at = now()"
        " WHERE tenant_id = $1 AND purpose = $2 AND revoked_at IS NULL"
        f" RETURNING {_COLUMNS}",
        tenant_id,
        purpose,
    )


async def lock_made_by(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, creators: list[str]
) -> list[asyncpg.Record]:
    """The tenant's keys made by any of ``creators`` (``created_by`` values), revoked and
    expired ones too, locked until the transaction ends: a key that one of them is minting
    with this lock held is refused or seen by the next call (see :func:`lock_creator_key`)."""
    return await conn.fetch(
        f"SELECT id, role, {_LIVE} AS live FROM api_keys"
        " WHERE tenant_id = $1 AND created_by = ANY($2::text[])"
        " ORDER BY id FOR UPDATE",
        tenant_id,
        creators,
    )


async def lock_creator_key(
    conn: asyncpg.Connection, key_id: uuid.UUID, *, tenant_id: uuid.UUID
) -> asyncpg.Record | None:
    """The key minting another, if it is still live, held (shared) until the transaction ends."""
    return await conn.fetchrow(
        f"SELECT id, role FROM api_keys WHERE id = $1 AND tenant_id = $2 AND {_LIVE} FOR SHARE",
        key_id,
        tenant_id,
    )


async def lock_creator_membership(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, user_id: uuid.UUID
) -> str | None:
    """The role of the member minting a key, as it is now, held (shared) until the transaction
    ends: a removal or role change waits for the key and then sees it."""
    return await conn.fetchval(
        "SELECT role FROM memberships WHERE tenant_id = $1 AND user_id = $2 FOR SHARE",
        tenant_id,
        user_id,
    )
