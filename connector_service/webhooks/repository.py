"""Every line of SQL of provider webhooks: endpoints by token hash, deliveries taken, refusals."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

REFUSALS_KEPT = 100


async def install_of(conn: asyncpg.Connection, token_hash: str) -> asyncpg.Record | None:
    """The install a webhook URL belongs to, with what the intake needs: its tenant, status and
    the manifest of the version it runs."""
    return await conn.fetchrow(
        "SELECT ic.id, ic.tenant_id, ic.status, coalesce(v.manifest, mc.manifest) AS manifest"
        " FROM webhook_endpoints we JOIN integration_connectors ic ON ic.id = we.integration_id"
        " LEFT JOIN marketplace_connectors mc ON mc.id = ic.marketplace_connector_id"
        " LEFT JOIN marketplace_connector_versions v"
        "   ON v.connector_id = ic.marketplace_connector_id AND v.version = ic.version"
        " WHERE we.token_hash = $1",
        token_hash,
    )


async def set_endpoint(
    conn: asyncpg.Connection, integration_id: uuid.UUID, token_hash: str
) -> None:
    await conn.execute(
        "INSERT INTO webhook_endpoints (integration_id, token_hash) VALUES ($1, $2)"
        " ON CONFLICT (integration_id) DO UPDATE SET token_hash = EXCLUDED.token_hash,"
        " created_at = now()",
        integration_id,
        token_hash,
    )


async def has_endpoint(conn: asyncpg.Connection, integration_id: uuid.UUID) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM webhook_endpoints WHERE integration_id = $1", integration_id
        )
    )


async def seen(conn: asyncpg.Connection, integration_id: uuid.UUID, delivery_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM webhook_deliveries WHERE integration_id = $1 AND delivery_id = $2",
            integration_id,
            delivery_id,
        )
    )


async def taken(
    conn: asyncpg.Connection, integration_id: uuid.UUID, delivery_id: str, event_type: str | None
) -> bool:
    """Record a delivery as applied; False when it already was (a replay raced it)."""
    return bool(
        await conn.fetchval(
            "INSERT INTO webhook_deliveries (integration_id, delivery_id, event_type)"
            " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING TRUE",
            integration_id,
            delivery_id,
            event_type,
        )
    )


async def taken_many(
    conn: asyncpg.Connection, integration_id: uuid.UUID, deliveries: dict[str, str]
) -> None:
    """Record deliveries (id -> event type) as applied, in the caller's transaction."""
    await conn.execute(
        "INSERT INTO webhook_deliveries (integration_id, delivery_id, event_type)"
        " SELECT $1, d, t FROM unnest($2::text[], $3::text[]) AS x(d, t) ON CONFLICT DO NOTHING",
        integration_id,
        list(deliveries),
        list(deliveries.values()),
    )


async def refused(
    conn: asyncpg.Connection, integration_id: uuid.UUID, reason: str, status: int, detail: str
) -> None:
    """Record a refusal, keeping the newest :data:`REFUSALS_KEPT` of the install."""
    await conn.execute(
        "INSERT INTO webhook_refusals (integration_id, reason, status, detail)"
        " VALUES ($1, $2, $3, $4)",
        integration_id,
        reason,
        status,
        detail[:300],
    )
    await conn.execute(
        "DELETE FROM webhook_refusals WHERE integration_id = $1 AND id <= (SELECT id FROM"
        " webhook_refusals WHERE integration_id = $1 ORDER BY id DESC OFFSET $2 LIMIT 1)",
        integration_id,
        REFUSALS_KEPT,
    )


async def summary(conn: asyncpg.Connection, integration_id: uuid.UUID) -> dict[str, Any]:
    """Deliveries taken and refused in the last 24 hours, and the latest refusals."""
    counts = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM webhook_deliveries WHERE integration_id = $1"
        "  AND received_at > now() - interval '1 day') AS taken,"
        " (SELECT count(*) FROM webhook_refusals WHERE integration_id = $1"
        "  AND at > now() - interval '1 day') AS refused",
        integration_id,
    )
    recent = await conn.fetch(
        "SELECT at, reason, status, detail FROM webhook_refusals WHERE integration_id = $1"
        " ORDER BY id DESC LIMIT 20",
        integration_id,
    )
    return {"taken_24h": counts["taken"], "refused_24h": counts["refused"],
            "recent_refusals": [dict(r) for r in recent]}  # fmt: skip


async def sweep(conn: asyncpg.Connection, *, days: int = 7) -> int:
    """Forget deliveries older than ``days`` (a replay that old is refused as stale anyway by
    the schemes that sign a time; GitHub's and Shopify's are kept that long)."""
    done = await conn.execute(
        "DELETE FROM webhook_deliveries WHERE received_at < now() - make_interval(days => $1)",
        days,
    )
    return int(done.split()[-1])
