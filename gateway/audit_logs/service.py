from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from common import audit
from common.errors import InvalidRequest
from common.pagination import decode_cursor, encode_cursor
from gateway.audit_logs import repository
from gateway.audit_logs.schemas import Filters

EXPORT_MAX_ROWS = 100_000  # one export's rows at most: the newest that match
EXPORT_PAGE_ROWS = 1_000  # rows read per statement (and connection) while streaming


class InvalidTimeRange(InvalidRequest):
    code, title = "invalid_time_range", "Invalid time range"


def _check(filters: Filters) -> None:
    if filters.since is not None and filters.until is not None and filters.since >= filters.until:
        raise InvalidTimeRange("since must be earlier than until")


async def list_entries(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    filters: Filters,
    cursor: str | None = None,
    limit: int,
) -> dict[str, Any]:
    """One page of the tenant's audit entries, newest first."""
    _check(filters)
    key = decode_cursor(cursor, parse=(int,))
    rows = await page(
        conn, tenant_id=tenant_id, filters=filters, before_seq=key[0] if key else None,
        limit=limit + 1,
    )  # fmt: skip
    items = rows[:limit]
    next_cursor = encode_cursor([str(items[-1]["seq"])]) if len(rows) > limit else None
    return {"items": items, "next_cursor": next_cursor}


async def page(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    filters: Filters,
    before_seq: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to ``limit`` matching entries below ``before_seq``, newest first."""
    rows = await repository.list_for_tenant(
        conn, tenant_id, filters=filters, before_seq=before_seq, limit=limit
    )
    return [_entry(r) for r in rows]


async def start_export(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    filters: Filters,
    actor: str,
    request_id: str | None,
) -> bool:
    """Check the filters and record the export (``audit_log.exported``, in the caller's
    transaction: the export lists its own entry when the filters match it). Answers whether
    more than :data:`EXPORT_MAX_ROWS` entries match (then only the newest are exported)."""
    _check(filters)
    truncated = await repository.more_than(conn, tenant_id, EXPORT_MAX_ROWS, filters=filters)
    await audit.record(
        conn, tenant_id=tenant_id, actor=actor, action="audit_log.exported",
        payload={"format": "csv", "filters": filters.given(), "truncated": truncated},
        request_id=request_id,
    )  # fmt: skip
    return truncated


def _entry(row: asyncpg.Record) -> dict[str, Any]:
    entry = dict(row)
    entry["hash"] = row["hash"].hex()
    entry["prev_hash"] = row["prev_hash"].hex() if row["prev_hash"] is not None else None
    return entry
