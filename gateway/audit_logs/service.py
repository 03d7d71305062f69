from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from common.errors import InvalidRequest
from common.pagination import decode_cursor, encode_cursor
from gateway.audit_logs import repository


class InvalidTimeRange(InvalidRequest):
    code, title = "invalid_time_range", "Invalid time range"


async def list_entries(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    action: str | None = None,
    action_prefix: str | None = None,
    actor: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int,
) -> dict[str, Any]:
    """One page of the tenant's audit entries, newest first."""
    if since is not None and until is not None and since >= until:
        raise InvalidTimeRange("since must be earlier than until")
    key = decode_cursor(cursor, parse=(int,))
    rows = await repository.list_for_tenant(
        conn, tenant_id, action=action, action_prefix=action_prefix, actor=actor, target=target,
        since=since, until=until, before_seq=key[0] if key else None, limit=limit + 1,
    )  # fmt: skip
    items = [_entry(r) for r in rows[:limit]]
    next_cursor = encode_cursor([str(items[-1]["seq"])]) if len(rows) > limit else None
    return {"items": items, "next_cursor": next_cursor}


def _entry(row: asyncpg.Record) -> dict[str, Any]:
    entry = dict(row)
    entry["hash"] = row["hash"].hex()
    entry["prev_hash"] = row["prev_hash"].hex() if row["prev_hash"] is not None else None
    return entry
