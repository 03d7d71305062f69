from __future__ import annotations

import uuid

import asyncpg

_COLUMNS = "id, slug, name, industry, size, created_at, updated_at"


async def insert(
    conn: asyncpg.Connection, *, slug: str, name: str, industry: str | None, size: int | None
) -> asyncpg.Record | None:
    """The new tenant, or None when the slug is taken."""
    return await conn.fetchrow(
        f"INSERT INTO tenants (slug, name, industry, size) VALUES ($1, $2, $3, $4)"
        f" ON CONFLICT (slug) DO NOTHING RETURNING {_COLUMNS}",
        slug,
        name,
        industry,
        size,
    )


async def get_by_slug(conn: asyncpg.Connection, slug: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_COLUMNS} FROM tenants WHERE slug = $1", slug)


async def get(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_COLUMNS} FROM tenants WHERE id = $1", tenant_id)
