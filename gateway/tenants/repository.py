from __future__ import annotations

import uuid

import asyncpg

_COLUMNS = "id, slug, name, industry, size, description, created_at, updated_at"
# What PATCH /api/v1/tenant may change (column names are never taken from the request).
PROFILE_FIELDS = ("name", "industry", "size", "description")


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


async def update_profile(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, changes: dict[str, object]
) -> asyncpg.Record | None:
    """Set the given profile fields (keys of ``PROFILE_FIELDS`` only); the updated row."""
    fields = [f for f in PROFILE_FIELDS if f in changes]
    assignments = ", ".join(f"{f} = ${i}" for i, f in enumerate(fields, start=2))
    return await conn.fetchrow(
        f"UPDATE tenants SET {assignments} WHERE id = $1 RETURNING {_COLUMNS}",
        tenant_id,
        *(changes[f] for f in fields),
    )
