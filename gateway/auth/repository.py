from __future__ import annotations

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
