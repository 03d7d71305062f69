from __future__ import annotations

import uuid

import asyncpg

_VERIFY = """
WITH k AS (
    UPDATE api_keys SET last_used_at = now()
    WHERE key_hash = $1
      AND revoked_at IS NULL
      AND (expires_at IS NULL OR expires_at > now())
    RETURNING id, tenant_id, role
)
SELECT k.id, k.tenant_id, k.role, t.slug AS tenant_slug, t.suspended_at IS NOT NULL AS suspended
FROM k JOIN tenants t ON t.id = k.tenant_id
"""


async def find_active_key(conn: asyncpg.Connection, key_hash: bytes) -> asyncpg.Record | None:
    """The live key with this hash (and mark it used), or None."""
    return await conn.fetchrow(_VERIFY, key_hash)


async def identity_memberships(
    conn: asyncpg.Connection, *, issuer: str, subject: str
) -> list[asyncpg.Record]:
    """The user of an identity and each of their memberships (one row with no tenant when
    they have none); no rows when nobody has this identity."""
    return await conn.fetch(
        """SELECT i.user_id, t.id AS tenant_id, t.slug AS tenant_slug, m.role,
                  t.suspended_at IS NOT NULL AS suspended
           FROM user_identities i
           LEFT JOIN memberships m ON m.user_id = i.user_id
           LEFT JOIN tenants t ON t.id = m.tenant_id
           WHERE i.issuer = $1 AND i.subject = $2
           ORDER BY t.slug""",
        issuer, subject,
    )  # fmt: skip


_TENANT = """SELECT id AS tenant_id, slug AS tenant_slug, suspended_at IS NOT NULL AS suspended
               FROM tenants"""


async def tenant_by_id(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"{_TENANT} WHERE id = $1", tenant_id)


async def tenant_by_slug(conn: asyncpg.Connection, slug: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"{_TENANT} WHERE slug = $1", slug)
