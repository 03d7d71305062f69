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
    """Every tenant's industry, size and the services it has installed, oldest first (any
    status: a disabled install still says what the tenant uses; a service installed twice
    counts from its first install)."""
    rows = await conn.fetch(
        "SELECT t.industry, t.size,"
        " COALESCE(i.services, '{}'::text[]) AS services"
        " FROM tenants t LEFT JOIN ("
        "   SELECT tenant_id, array_agg(service_name ORDER BY first, service_name) AS services"
        "   FROM (SELECT tenant_id, service_name, min(created_at) AS first"
        "         FROM integration_connectors GROUP BY tenant_id, service_name) f"
        "   GROUP BY tenant_id"
        " ) i ON i.tenant_id = t.id"
    )
    return [TenantRow(r["industry"], r["size"], tuple(r["services"])) for r in rows]


# Whole hours from connector_service's hour rollups (kept a year; raw rows only a week), up to
# the hour before the last one its rollup job finished (at least an hour back), and the rows it
# writes per call from there on (``latency_ms`` for each, ``error`` for failures). Only failures
# that are the connector's count: not a tenant's refused credentials or bad input, nor calls the
# platform refused itself (circuit open, disabled, not allowed); the rollups keep those apart
# (``faults``), with the same classes as below.
_HEALTH = """
WITH bounds AS (
    SELECT now() - make_interval(secs => $1) AS since,
           least(date_trunc('hour', coalesce(
                     (SELECT rolled_until FROM connector_metric_rollup_state), now())),
                 date_trunc('hour', now()) - interval '1 hour') AS cut
)
SELECT service_name, sum(calls)::bigint AS calls, sum(errors)::bigint AS errors FROM (
    SELECT h.service_name, h.calls, h.faults AS errors
    FROM connector_metric_hours h, bounds b
    WHERE h.bucket >= b.since AND h.bucket < b.cut
    UNION ALL
    SELECT m.service_name,
           count(*) FILTER (WHERE m.metric_type = 'latency_ms'),
           count(*) FILTER (WHERE m.metric_type = 'error' AND m.labels ->> 'outcome' IN
                            ('transport', 'timeout', 'retryable', 'invalid_response'))
    FROM connector_metrics m, bounds b
    WHERE (m.timestamp >= greatest(b.since, b.cut)
           -- an uninstalled install's rollups went with it; its raw rows stay (install NULL)
           OR (m.connector_id IS NULL AND m.timestamp >= b.since AND m.timestamp < b.cut))
      AND m.metric_type IN ('latency_ms', 'error') AND m.service_name IS NOT NULL
    GROUP BY m.service_name
) counted
GROUP BY service_name
"""


async def health(conn: asyncpg.Connection, *, window_seconds: int) -> list[tuple[str, int, int]]:
    """(service, calls, failed calls) per connector service over the recent window (its whole
    hours, and the newest rows)."""
    rows = await conn.fetch(_HEALTH, float(window_seconds))
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
