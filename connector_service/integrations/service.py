from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from common.errors import NotFound
from common.pagination import decode_cursor, encode_cursor
from connector_service.integrations import repository


class IntegrationNotFound(NotFound):
    code, title = "integration_not_found", "Integration not found"


async def list_integrations(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    status: str | None,
    service_name: str | None,
    cursor: str | None,
    limit: int,
) -> dict[str, Any]:
    key = decode_cursor(cursor, parse=(datetime.fromisoformat, uuid.UUID))
    after = (key[0], key[1]) if key else None
    rows = await repository.list_for_tenant(
        conn, tenant_id, status=status, service_name=service_name, after=after, limit=limit + 1
    )
    items = [dict(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor([last["created_at"].isoformat(), str(last["id"])])
    return {"items": items, "next_cursor": next_cursor}


async def get_integration(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, integration_id: uuid.UUID
) -> dict[str, Any]:
    row = await repository.get(conn, tenant_id, integration_id)
    if row is None:
        raise IntegrationNotFound(f"no integration {integration_id} in this tenant")
    return dict(row)
