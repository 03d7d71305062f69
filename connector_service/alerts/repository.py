"""SQL of the alerts: the minute rollups the detector reads, and connector_alerts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

_COLUMNS = """a.id, a.tenant_id, a.connector_id AS integration_id, ic.connector_name,
    ic.service_name, a.metric, a.severity, a.state, a.opened_at, a.resolved_at,
    a.acknowledged_at, a.acknowledged_by, a.evidence, a.resolution"""
_FROM = "connector_alerts a JOIN integration_connectors ic ON ic.id = a.connector_id"


async def try_lock(conn: asyncpg.Connection, key: int) -> bool:
    """The evaluation's transaction-level advisory lock (``pg_try_advisory_xact_lock``): one
    process evaluates at a time, the others skip their tick; released when the caller's
    transaction ends."""
    return await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", key)


async def active_installs(
    conn: asyncpg.Connection, *, since: datetime, only: Sequence[uuid.UUID] | None = None
) -> list[asyncpg.Record]:
    """Installs with calls since ``since`` or an open alert (of ``only``, when given): id,
    tenant, when their rollups begin (the earliest minute, through the primary key)."""
    return await conn.fetch(
        """
        SELECT ic.id, ic.tenant_id,
               (SELECT min(m.bucket) FROM connector_metric_minutes m
                WHERE m.connector_id = ic.id) AS first_minute
        FROM integration_connectors ic
        WHERE ic.id IN (SELECT connector_id FROM connector_metric_minutes WHERE bucket >= $1
                        UNION SELECT connector_id FROM connector_alerts WHERE state = 'open')
          AND ($2::uuid[] IS NULL OR ic.id = ANY($2::uuid[]))
        """,
        since,
        None if only is None else list(only),
    )


async def minutes(
    conn: asyncpg.Connection, ids: list[uuid.UUID], spans: list[tuple[datetime, datetime]]
) -> list[asyncpg.Record]:
    """The minute rollups of installs ``ids`` within any of ``spans`` ([start, end) each)."""
    starts = [s for s, _ in spans]
    ends = [e for _, e in spans]
    return await conn.fetch(
        """
        SELECT m.connector_id, m.bucket, m.calls, m.errors, m.records, m.latency_index,
               m.latency_count
        FROM connector_metric_minutes m
        JOIN unnest($2::timestamptz[], $3::timestamptz[]) AS s(lo, hi)
          ON m.bucket >= s.lo AND m.bucket < s.hi
        WHERE m.connector_id = ANY($1::uuid[])
        """,
        ids,
        starts,
        ends,
    )


async def open_alerts(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, connector_id, metric, severity, evidence FROM connector_alerts"
        " WHERE state = 'open' AND connector_id = ANY($1::uuid[])",
        ids,
    )


async def insert(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, integration_id: uuid.UUID, metric: str,
    severity: str, evidence: dict[str, Any], at: datetime,
) -> uuid.UUID | None:  # fmt: skip
    """A new open alert; None when one is open for the install and metric already."""
    return await conn.fetchval(
        "INSERT INTO connector_alerts (tenant_id, connector_id, metric, severity, evidence,"
        " opened_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6)"
        " ON CONFLICT (connector_id, metric) WHERE state = 'open' DO NOTHING RETURNING id",
        tenant_id, integration_id, metric, severity, evidence, at,
    )  # fmt: skip


async def escalate(
    conn: asyncpg.Connection, alert_id: uuid.UUID, *, severity: str, evidence: dict[str, Any]
) -> bool:
    return (
        await conn.fetchval(
            "UPDATE connector_alerts SET severity = $2, evidence = $3::jsonb"
            " WHERE id = $1 AND state = 'open' RETURNING id",
            alert_id,
            severity,
            evidence,
        )
        is not None
    )


async def resolve(
    conn: asyncpg.Connection, alert_id: uuid.UUID, *, resolution: dict[str, Any], at: datetime
) -> bool:
    return (
        await conn.fetchval(
            "UPDATE connector_alerts SET state = 'resolved', resolved_at = $3,"
            " resolution = $2::jsonb WHERE id = $1 AND state = 'open' RETURNING id",
            alert_id,
            resolution,
            at,
        )
        is not None
    )


async def open_counts(conn: asyncpg.Connection, tenant_id: uuid.UUID | None = None) -> dict:
    """Open alerts by severity (every tenant's, or one's)."""
    rows = await conn.fetch(
        "SELECT severity, count(*) AS n FROM connector_alerts WHERE state = 'open'"
        " AND ($1::uuid IS NULL OR tenant_id = $1) GROUP BY severity",
        tenant_id,
    )
    return {r["severity"]: r["n"] for r in rows}


async def list_for_tenant(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, *, state: str | None,
    integration_id: uuid.UUID | None, before: tuple[datetime, uuid.UUID] | None, limit: int,
) -> list[asyncpg.Record]:  # fmt: skip
    """A page newest first, in (opened_at, id) descending order, strictly before ``before``."""
    before_at, before_id = before if before else (None, None)
    return await conn.fetch(
        f"SELECT {_COLUMNS} FROM {_FROM} WHERE a.tenant_id = $1"
        " AND ($2::text IS NULL OR a.state = $2)"
        " AND ($3::uuid IS NULL OR a.connector_id = $3)"
        " AND ($4::timestamptz IS NULL OR (a.opened_at, a.id) < ($4, $5::uuid))"
        " ORDER BY a.opened_at DESC, a.id DESC LIMIT $6",
        tenant_id, state, integration_id, before_at, before_id, limit,
    )  # fmt: skip


async def get(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, alert_id: uuid.UUID, *, lock: bool = False
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM {_FROM} WHERE a.tenant_id = $1 AND a.id = $2"
        + (" FOR UPDATE OF a" if lock else ""),
        tenant_id,
        alert_id,
    )


async def acknowledge(conn: asyncpg.Connection, alert_id: uuid.UUID, *, by: str) -> None:
    await conn.execute(
        "UPDATE connector_alerts SET acknowledged_at = now(), acknowledged_by = $2"
        " WHERE id = $1 AND acknowledged_at IS NULL",
        alert_id,
        by,
    )
