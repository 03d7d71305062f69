"""Every line of SQL recommendations run: the shared statistics' inputs (read at each refresh)
and the caller's profile and installs (read fresh on every request)."""

from __future__ import annotations

import uuid

import asyncpg

from marketplace_service.recommendations.model import Item, TenantRow


async def catalog(conn: asyncpg.Connection) -> list[Item]:
    rows = await conn.fetch(
        "SELECT slug, name, service_identifier, category, vendor, description, logo_url,"
        " is_featured, verification FROM marketplace_connectors ORDER BY slug"
    )
    return [
        Item(
            slug=r["slug"], name=r["name"], service=r["service_identifier"],
            category=r["category"], vendor=r["vendor"], description=r["description"],
            logo_url=r["logo_url"], featured=r["is_featured"], verification=r["verification"],
        )
        for r in rows
    ]  # fmt: skip


async def tenants_with_installs(conn: asyncpg.Connection) -> list[TenantRow]:
    """Every tenant's industry, size and the services it has installed (any status: a disabled
    install still says what the tenant uses)."""
    rows = await conn.fetch(
        "SELECT t.industry, t.size,"
        " COALESCE(i.services, '{}'::text[]) AS services"
        " FROM tenants t LEFT JOIN ("
        "   SELECT tenant_id, array_agg(DISTINCT service_name) AS services"
        "   FROM integration_connectors GROUP BY tenant_id"
        " ) i ON i.tenant_id = t.id"
    )
    return [TenantRow(r["industry"], r["size"], frozenset(r["services"])) for r in rows]


async def health(conn: asyncpg.Connection, *, window_seconds: int) -> list[tuple[str, int, int]]:
    """(service, calls, failed calls) per connector service over the recent window, from the
    rows connector_service writes per call (``latency_ms`` for each, ``error`` for failures)."""
    rows = await conn.fetch(
        "SELECT service_name,"
        " count(*) FILTER (WHERE metric_type = 'latency_ms') AS calls,"
        # only failures that are the connector's: not a tenant's refused credentials or bad
        # input, nor calls the platform refused itself (circuit open, disabled, not allowed)
        " count(*) FILTER (WHERE metric_type = 'error' AND labels ->> 'outcome' IN"
        " ('transport', 'timeout', 'retryable', 'invalid_response')) AS errors"
        " FROM connector_metrics"
        " WHERE timestamp > now() - make_interval(secs => $1)"
        " AND metric_type IN ('latency_ms', 'error') AND service_name IS NOT NULL"
        " GROUP BY service_name",
        float(window_seconds),
    )
    return [(r["service_name"], r["calls"], r["errors"]) for r in rows]


async def caller(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> asyncpg.Record | None:
    """The caller's profile and installed services, in one round trip."""
    return await conn.fetchrow(
        "SELECT t.industry, t.size, t.description,"
        " ARRAY(SELECT DISTINCT service_name FROM integration_connectors"
        "       WHERE tenant_id = t.id) AS services"
        " FROM tenants t WHERE t.id = $1",
        tenant_id,
    )
