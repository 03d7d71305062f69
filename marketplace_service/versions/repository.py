"""The SQL of published versions: read them, withdraw one. They are written (recorded) by the
database when their entry is (migrations/20261206090000_connector_versions.sql)."""

from __future__ import annotations

import uuid

import asyncpg

_COLUMNS = (
    "v.version, v.manifest, v.endpoint_url, v.published_at, v.withdrawn_at, v.withdrawn_reason"
)


async def entry(conn: asyncpg.Connection, slug: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, slug, published_by_tenant FROM marketplace_connectors WHERE slug = $1", slug
    )


async def list_versions(conn: asyncpg.Connection, entry_id: uuid.UUID) -> list[asyncpg.Record]:
    """Every version of an entry, newest published first."""
    return await conn.fetch(
        f"SELECT {_COLUMNS} FROM marketplace_connector_versions v WHERE v.connector_id = $1"
        " ORDER BY v.id DESC",
        entry_id,
    )


async def get_version(
    conn: asyncpg.Connection, entry_id: uuid.UUID, version: str, *, lock: bool = False
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM marketplace_connector_versions v"
        " WHERE v.connector_id = $1 AND v.version = $2" + (" FOR UPDATE" if lock else ""),
        entry_id,
        version,
    )


async def withdraw(
    conn: asyncpg.Connection, entry_id: uuid.UUID, version: str, *, reason: str
) -> None:
    await conn.execute(
        "UPDATE marketplace_connector_versions SET withdrawn_at = now(), withdrawn_reason = $3"
        " WHERE connector_id = $1 AND version = $2 AND withdrawn_at IS NULL",
        entry_id,
        version,
        reason,
    )


async def installs_on(conn: asyncpg.Connection, entry_id: uuid.UUID, version: str) -> int:
    """How many installs, across tenants, run a version (read only: connector_service's)."""
    return await conn.fetchval(
        "SELECT count(*) FROM integration_connectors"
        " WHERE marketplace_connector_id = $1 AND version = $2",
        entry_id,
        version,
    )
