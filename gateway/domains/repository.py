from __future__ import annotations

import uuid

import asyncpg

_COLUMNS = "domain, tenant_id, role, created_by, created_at"


async def insert(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, domain: str, created_by: str
) -> asyncpg.Record | None:
    """The new registration, or None when some tenant (this one too) has the domain."""
    return await conn.fetchrow(
        f"""INSERT INTO tenant_domains (domain, tenant_id, created_by) VALUES ($1, $2, $3)
            ON CONFLICT (domain) DO NOTHING RETURNING {_COLUMNS}""",
        domain, tenant_id, created_by,
    )  # fmt: skip


async def owner(conn: asyncpg.Connection, domain: str) -> uuid.UUID | None:
    return await conn.fetchval("SELECT tenant_id FROM tenant_domains WHERE domain = $1", domain)


async def count(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM tenant_domains WHERE tenant_id = $1", tenant_id
    )


async def list_for_tenant(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_COLUMNS} FROM tenant_domains WHERE tenant_id = $1 ORDER BY domain", tenant_id
    )


async def delete(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, domain: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"DELETE FROM tenant_domains WHERE domain = $1 AND tenant_id = $2 RETURNING {_COLUMNS}",
        domain, tenant_id,
    )  # fmt: skip


async def tenant_of(conn: asyncpg.Connection, domain: str) -> asyncpg.Record | None:
    """The tenant that registered ``domain`` (id, slug, name, the role its users join as)."""
    return await conn.fetchrow(
        """SELECT t.id, t.slug, t.name, d.role FROM tenant_domains d
           JOIN tenants t ON t.id = d.tenant_id WHERE d.domain = $1""",
        domain,
    )
