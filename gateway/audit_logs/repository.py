from __future__ import annotations

import uuid

import asyncpg

from gateway.audit_logs.schemas import Filters

_COLUMNS = (
    "id, seq, user_id AS actor, action, target, payload, request_id, prev_hash, hash, created_at"
)
# $1 tenant, $2 action, $3 action prefix, $4 actor, $5 target, $6 since, $7 until, $8 below seq
_MATCHING = (
    "FROM audit_logs WHERE tenant_id = $1"
    " AND ($2::text IS NULL OR action = $2)"
    " AND ($3::text IS NULL OR starts_with(action, $3))"
    " AND ($4::text IS NULL OR user_id = $4)"
    " AND ($5::text IS NULL OR target = $5)"
    " AND ($6::timestamptz IS NULL OR created_at >= $6)"
    " AND ($7::timestamptz IS NULL OR created_at < $7)"
    " AND ($8::bigint IS NULL OR seq < $8)"
)


def _matching_args(tenant_id: uuid.UUID, f: Filters, before_seq: int | None) -> tuple:
    """The parameters $1 to $8 of :data:`_MATCHING`."""
    return (tenant_id, f.action, f.action_prefix, f.actor, f.target, f.since, f.until, before_seq)


async def list_for_tenant(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    *,
    filters: Filters,
    before_seq: int | None,
    limit: int,
) -> list[asyncpg.Record]:
    """A page of the tenant's entries, newest (highest seq) first, below ``before_seq``."""
    return await conn.fetch(
        f"SELECT {_COLUMNS} {_MATCHING} ORDER BY seq DESC LIMIT $9",
        *_matching_args(tenant_id, filters, before_seq), limit,
    )  # fmt: skip


async def more_than(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, count: int, *, filters: Filters
) -> bool:
    """Whether more than ``count`` entries match (walks at most ``count + 1`` index entries)."""
    return await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 {_MATCHING} ORDER BY seq DESC OFFSET $9 LIMIT 1)",
        *_matching_args(tenant_id, filters, None), count,
    )  # fmt: skip
