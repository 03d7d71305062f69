from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

_COLUMNS = (
    "id, tenant_id, connector_name, service_name, marketplace_connector_id, version, status,"
    " status_reason, last_error, config, last_sync_at, created_at, updated_at"
)


async def list_for_tenant(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    *,
    status: str | None,
    service_name: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """A page in (created_at, id) order, strictly after the given key."""
    after_created, after_id = after if after else (None, None)
    return await conn.fetch(
        f"SELECT {_COLUMNS} FROM integration_connectors"
        " WHERE tenant_id = $1"
        " AND ($2::text IS NULL OR status = $2)"
        " AND ($3::text IS NULL OR service_name = $3)"
        " AND ($4::timestamptz IS NULL OR (created_at, id) > ($4, $5::uuid))"
        " ORDER BY created_at, id LIMIT $6",
        tenant_id,
        status,
        service_name,
        after_created,
        after_id,
        limit,
    )


async def get(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, integration_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM integration_connectors WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        integration_id,
    )
