from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

# An install as the API shows it (status update_required on a withdrawn version): the view the
# migration defines over the table and the version it is pinned to.
_SELECT = (
    "SELECT id, tenant_id, connector_name, service_name, marketplace_connector_id, version,"
    " config, last_error, last_sync_at, sync_interval_seconds, created_at, updated_at, status,"
    " status_reason, setup_done, settings_revision FROM integration_connectors_shown"
)


async def list_for_tenant(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    *,
    status: str | None,
    service_name: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """A page in (created_at, id) order, strictly after the given key."""
    after_created, after_id = after if after else (None, None)
    return await conn.fetch(
        f"{_SELECT} WHERE tenant_id = $1"
        " AND ($2::text IS NULL OR status = $2)"
        " AND ($3::text IS NULL OR service_name = $3)"
        " AND ($4::timestamptz IS NULL OR (created_at, id) > ($4, $5::uuid))"
        " ORDER BY created_at, id LIMIT $6",
        tenant_id,
        status,
        service_name,
        after_created,
        after_id,
        limit,
    )


async def get(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, integration_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"{_SELECT} WHERE tenant_id = $1 AND id = $2", tenant_id, integration_id
    )


async def catalog_entry(conn: asyncpg.Connection, slug: str) -> asyncpg.Record | None:
    """The marketplace's entry with what an install of it gets: its newest version that is not
    withdrawn (``version`` None when every one is), and how far it is known to work
    (``verification``). Read-only here: marketplace_service owns both tables."""
    return await conn.fetchrow(
        "SELECT mc.id, mc.slug, mc.name, mc.service_identifier, mc.allow_multiple,"
        " mc.verification, v.version, v.manifest, v.endpoint_url FROM marketplace_connectors mc"
        " LEFT JOIN LATERAL (SELECT version, manifest, endpoint_url"
        "  FROM marketplace_connector_versions WHERE connector_id = mc.id"
        "  AND withdrawn_at IS NULL ORDER BY id DESC LIMIT 1) v ON TRUE"
        " WHERE mc.slug = $1",
        slug,
    )


async def pinned_version(
    conn: asyncpg.Connection, entry_id: uuid.UUID | None, version: str | None
) -> asyncpg.Record | None:
    """The published version an install runs: its manifest, endpoint and withdrawal."""
    if entry_id is None or version is None:
        return None
    return await conn.fetchrow(
        "SELECT version, manifest, endpoint_url, withdrawn_at, withdrawn_reason"
        " FROM marketplace_connector_versions WHERE connector_id = $1 AND version = $2",
        entry_id,
        version,
    )


async def live_versions(
    conn: asyncpg.Connection, entry_id: uuid.UUID | None
) -> list[asyncpg.Record]:
    """Every version of an entry that is not withdrawn, newest first (upgrade targets)."""
    if entry_id is None:
        return []
    return await conn.fetch(
        "SELECT version, manifest, endpoint_url, published_at"
        " FROM marketplace_connector_versions WHERE connector_id = $1 AND withdrawn_at IS NULL"
        " ORDER BY id DESC",
        entry_id,
    )


async def count_installed(conn: asyncpg.Connection, tenant_id: uuid.UUID, service_name: str) -> int:
    """Installs of a service in a tenant. Takes a transaction lock on (tenant, service) first, so
    two concurrent installs of a single-instance connector cannot both see zero."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('install:' || $1 || ':' || $2))",
        str(tenant_id),
        service_name,
    )
    return await conn.fetchval(
        "SELECT count(*) FROM integration_connectors WHERE tenant_id = $1 AND service_name = $2",
        tenant_id,
        service_name,
    )


async def insert(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    marketplace_connector_id: uuid.UUID,
    connector_name: str,
    service_name: str,
    version: str,
    config: dict,
    api_spec: dict,
    status_reason: str,
    created_by: str,
) -> asyncpg.Record:
    integration_id = await conn.fetchval(
        "INSERT INTO integration_connectors (tenant_id, marketplace_connector_id, connector_name,"
        " service_name, version, config, api_spec, status, status_reason, created_by)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9) RETURNING id",
        tenant_id,
        marketplace_connector_id,
        connector_name,
        service_name,
        version,
        config,
        api_spec,
        status_reason,
        created_by,
    )
    row = await get(conn, tenant_id, integration_id)
    assert row is not None
    return row


async def update(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    *,
    config: dict | None = None,
    connector_name: str | None = None,
    status: str | None = None,
    status_reason: str | None = None,
    sync_interval_seconds: int | None = None,
) -> asyncpg.Record | None:
    """Change what is given (None keeps a column); a new status replaces the reason too."""
    changed = await conn.fetchval(
        "UPDATE integration_connectors SET config = COALESCE($3, config),"
        " connector_name = COALESCE($4, connector_name), status = COALESCE($5, status),"
        " status_reason = CASE WHEN $5::text IS NULL THEN status_reason ELSE $6 END,"
        " sync_interval_seconds = COALESCE($7, sync_interval_seconds)"
        " WHERE tenant_id = $1 AND id = $2 RETURNING id",
        tenant_id,
        integration_id,
        config,
        connector_name,
        status,
        status_reason,
        sync_interval_seconds,
    )
    return None if changed is None else await get(conn, tenant_id, integration_id)


async def set_setup_done(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, integration_id: uuid.UUID, done: list[int]
) -> asyncpg.Record | None:
    """Replace the setup steps ticked done; None when the install is not the tenant's."""
    changed = await conn.fetchval(
        "UPDATE integration_connectors SET setup_done = $3::smallint[]"
        " WHERE tenant_id = $1 AND id = $2 RETURNING id",
        tenant_id, integration_id, done,
    )  # fmt: skip
    return None if changed is None else await get(conn, tenant_id, integration_id)


async def lock(conn: asyncpg.Connection, tenant_id: uuid.UUID, integration_id: uuid.UUID) -> None:
    """Lock an install's row until the transaction ends (a concurrent change waits)."""
    await conn.execute(
        "SELECT 1 FROM integration_connectors WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
        tenant_id, integration_id,
    )  # fmt: skip


async def set_version(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    *,
    version: str,
    config: dict,
) -> None:
    """Pin an install to another published version (an upgrade), with the config for it."""
    await conn.execute(
        "UPDATE integration_connectors SET version = $3, config = $4"
        " WHERE tenant_id = $1 AND id = $2",
        tenant_id, integration_id, version, config,
    )  # fmt: skip


async def delete(conn: asyncpg.Connection, tenant_id: uuid.UUID, integration_id: uuid.UUID) -> bool:
    result = await conn.execute(
        "DELETE FROM integration_connectors WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        integration_id,
    )
    return result.endswith(" 1")


async def call_target(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, integration_id: uuid.UUID
) -> asyncpg.Record | None:
    """An install with what calling (or connecting) its connector needs from the catalog: the
    endpoint and manifest of the version it is pinned to, never the entry's newest."""
    return await conn.fetchrow(
        "SELECT ic.id, ic.tenant_id, ic.connector_name, ic.service_name, ic.status, ic.config,"
        " ic.api_spec, ic.marketplace_connector_id, ic.version, mc.slug, v.endpoint_url,"
        " v.manifest, v.withdrawn_reason"
        " FROM integration_connectors ic"
        " LEFT JOIN marketplace_connectors mc ON mc.id = ic.marketplace_connector_id"
        " LEFT JOIN marketplace_connector_versions v"
        " ON v.connector_id = ic.marketplace_connector_id AND v.version = ic.version"
        " WHERE ic.tenant_id = $1 AND ic.id = $2",
        tenant_id,
        integration_id,
    )


async def status_of(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, integration_id: uuid.UUID
) -> str | None:
    """The install's stored status, its row locked for the rest of the transaction."""
    return await conn.fetchval(
        "SELECT status FROM integration_connectors WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
        tenant_id, integration_id,
    )  # fmt: skip


async def set_status(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    *,
    status: str,
    reason: str,
    last_error: str | None,
    only_from: str | None = None,
    clear_error: bool = False,
    even_if_disabled: bool = False,
) -> bool:
    """A status change that follows a call or a connection; a disabled install stays disabled
    (unless ``even_if_disabled``), and with ``only_from`` only an install in that status
    changes. ``last_error`` is kept when None is given (an error stays visible after recovery),
    or cleared with ``clear_error`` (a newly connected account)."""
    result = await conn.execute(
        "UPDATE integration_connectors SET status = $3, status_reason = $4,"
        " last_error = CASE WHEN $7 THEN NULL ELSE COALESCE($5, last_error) END"
        " WHERE tenant_id = $1 AND id = $2 AND ($8 OR status <> 'disabled')"
        " AND ($6::text IS NULL OR status = $6)",
        tenant_id, integration_id, status, reason[:1000],
        last_error[:2000] if last_error else None, only_from, clear_error, even_if_disabled,
    )  # fmt: skip
    return result.endswith(" 1")
