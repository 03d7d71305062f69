from __future__ import annotations

import asyncpg


async def insert_flow(
    conn: asyncpg.Connection,
    *,
    flow_hash: bytes,
    provider: str,
    tenant_slug: str | None,
    return_to: str | None,
    invitation_hash: bytes | None,
    ttl_seconds: float,
) -> None:
    await conn.execute(
        """INSERT INTO login_flows (flow_hash, provider, tenant_slug, return_to, invitation_hash,
               expires_at)
           VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6::float8))""",
        flow_hash, provider, tenant_slug, return_to, invitation_hash, ttl_seconds,
    )  # fmt: skip


async def consume_flow(conn: asyncpg.Connection, flow_hash: bytes) -> asyncpg.Record | None:
    """Single use: the row is gone whatever the callback does next."""
    return await conn.fetchrow(
        """DELETE FROM login_flows WHERE flow_hash = $1
           RETURNING provider, tenant_slug, return_to, invitation_hash,
                     expires_at <= now() AS expired""",
        flow_hash,
    )


async def tenant_by_slug(conn: asyncpg.Connection, slug: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT id, slug FROM tenants WHERE slug = $1", slug)
