"""The database-derived gauges (connector_service/monitoring/): one refresh reads the outbox,
the dead letters and the schedule, per catalog service name, and sets what an operator sees."""

from __future__ import annotations

import secrets

from prometheus_client import generate_latest

from connector_service.monitoring.gauges import DatabaseGauges
from examples.crm_connector.connector import connector
from marketplace_service.catalog.service import register_deployed
from tests.support import connected, make_tenant, metric_total


def gauge(name: str, service: str) -> float:
    return metric_total(generate_latest().decode(), name, service=service)


async def catalog_entry(dsn: str) -> tuple[str, str]:
    """The example connector in the catalog under a fresh slug (its streams make its installs
    scheduled); the slug is also the installs' service name."""
    slug = f"gauges-{secrets.token_hex(3)}"
    manifest = {**connector.manifest(), "name": slug, "display_name": slug}
    async with connected(dsn) as conn:
        await register_deployed(conn, manifest=manifest, endpoint_url="http://127.0.0.1:9",
                                category="crm", vendor="tests")  # fmt: skip
        entry_id = await conn.fetchval(
            "SELECT id FROM marketplace_connectors WHERE slug = $1", slug
        )
    return slug, entry_id


async def install(conn, tenant_id, slug, entry_id, *, status="active", since="0s", interval=300):  # type: ignore[no-untyped-def]
    return await conn.fetchval(
        "INSERT INTO integration_connectors (tenant_id, connector_name, service_name,"
        " marketplace_connector_id, version, status, sync_interval_seconds, last_sync_at)"
        " VALUES ($1, $2, $2, $3, '1.0.0', $4, $5, now() - $6::text::interval) RETURNING id",
        tenant_id, slug, entry_id, status, interval, since,
    )  # fmt: skip


async def outbox(conn, integration_id, key, *, state="pending", age="0s"):  # type: ignore[no-untyped-def]
    await conn.execute(
        "INSERT INTO sync_outbox (integration_id, stream, record_key, state, created_at)"
        " VALUES ($1, 'contacts', $2, $3, now() - $4::text::interval)",
        integration_id, key, state, age,
    )  # fmt: skip


async def test_outbox_dead_letters_and_lag_per_service(dsn, database):
    slug, entry_id = await catalog_entry(dsn)
    tenant = await make_tenant(dsn)
    async with connected(dsn) as conn:
        late = await install(conn, tenant.tenant_id, slug, entry_id, since="1000s", interval=300)
        await install(conn, tenant.tenant_id, slug, entry_id, since="10s", interval=300)
        # disabled, and long overdue: not scheduled, so not lagging; its changes wait by design
        off = await install(conn, tenant.tenant_id, slug, entry_id, status="disabled",
                            since="10 days")  # fmt: skip
        await outbox(conn, late, "c1", age="600s")
        await outbox(conn, late, "c2", age="5s")
        await outbox(conn, late, "c3", state="dead", age="2 days")
        await outbox(conn, off, "c4", age="3 days")
        await outbox(conn, off, "c5", state="dead")

    gauges = DatabaseGauges(database)
    await gauges.refresh()
    assert gauge("seedos_sync_outbox_pending", slug) == 2
    assert 600 <= gauge("seedos_sync_outbox_oldest_seconds", slug) < 700
    assert gauge("seedos_sync_dead_letters_held", slug) == 2
    assert 700 <= gauge("seedos_sync_lag_seconds", slug) < 800

    # pushed, dead letters discarded, synced: the service is back to 0 everywhere
    async with connected(dsn) as conn:
        await conn.execute("DELETE FROM sync_outbox WHERE integration_id = ANY($1)", [late, off])
        await conn.execute("UPDATE integration_connectors SET last_sync_at = now() WHERE id = $1",
                           late)  # fmt: skip
    await gauges.refresh()
    for name in ("seedos_sync_outbox_pending", "seedos_sync_outbox_oldest_seconds",
                 "seedos_sync_dead_letters_held", "seedos_sync_lag_seconds"):  # fmt: skip
        assert gauge(name, slug) == 0, name
