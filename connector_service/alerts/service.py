"""The tenant's alerts: listed newest first, acknowledged (audited)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from common import audit
from common.errors import NotFound
from common.pagination import decode_cursor, encode_cursor
from connector_service.alerts import repository


class AlertNotFound(NotFound):
    code, title = "alert_not_found", "Alert not found"


async def list_alerts(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, state: str,
    integration_id: uuid.UUID | None, cursor: str | None, limit: int,
) -> dict[str, Any]:  # fmt: skip
    key = decode_cursor(cursor, parse=(datetime.fromisoformat, uuid.UUID))
    rows = await repository.list_for_tenant(
        conn, tenant_id, state=None if state == "all" else state, integration_id=integration_id,
        before=(key[0], key[1]) if key else None, limit=limit + 1,
    )  # fmt: skip
    items = [dict(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor([last["opened_at"].isoformat(), str(last["id"])])
    return {"items": items, "next_cursor": next_cursor}


async def summary(conn: asyncpg.Connection, *, tenant_id: uuid.UUID) -> dict[str, int]:
    counts = await repository.open_counts(conn, tenant_id)
    return {"open": sum(counts.values()), "critical": counts.get("critical", 0),
            "warning": counts.get("warning", 0)}  # fmt: skip


async def acknowledge(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, alert_id: uuid.UUID, actor: str,
    request_id: str | None,
) -> dict[str, Any]:  # fmt: skip
    """Mark the alert seen by ``actor`` (the caller's transaction). Idempotent: an alert
    acknowledged already is answered as it is, unchanged and not audited again."""
    row = await repository.get(conn, tenant_id, alert_id, lock=True)
    if row is None:
        raise AlertNotFound(f"no alert {alert_id} in this tenant")
    if row["acknowledged_at"] is None:
        await repository.acknowledge(conn, alert_id, by=actor)
        await audit.record(
            conn, tenant_id=tenant_id, actor=actor, action="alert.acknowledged",
            target=f"integration:{row['integration_id']}", request_id=request_id,
            payload={"integration_id": str(row["integration_id"]), "alert_id": str(alert_id),
                     "metric": row["metric"], "severity": row["severity"]},
        )  # fmt: skip
        row = await repository.get(conn, tenant_id, alert_id)
    return dict(row)
