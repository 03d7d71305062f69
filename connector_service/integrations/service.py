from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from common import audit
from common.crypto import KeyRing
from common.errors import Conflict, InvalidRequest, NotFound
from common.pagination import decode_cursor, encode_cursor
from connector_service.credentials import repository as credentials_repository
from connector_service.credentials import service as credentials_service
from connector_service.integrations import config as config_rules
from connector_service.integrations import repository
from connector_service.integrations.preconditions import IfMatch
from connector_service.oauth import tokens as oauth_tokens
from connector_service.oauth.config import OAuthConfig
from connector_service.outbound import events as outbound_events

NOT_CONNECTED = "waiting for an account to be connected (POST .../oauth/connect)"


class IntegrationNotFound(NotFound):
    code, title = "integration_not_found", "Integration not found"


async def list_integrations(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    status: str | None,
    service_name: str | None,
    cursor: str | None,
    limit: int,
) -> dict[str, Any]:
    key = decode_cursor(cursor, parse=(datetime.fromisoformat, uuid.UUID))
    after = (key[0], key[1]) if key else None
    rows = await repository.list_for_tenant(
        conn, tenant_id, status=status, service_name=service_name, after=after, limit=limit + 1
    )
    items = [dict(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor([last["created_at"].isoformat(), str(last["id"])])
    return {"items": items, "next_cursor": next_cursor}


async def get_integration(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, integration_id: uuid.UUID
) -> dict[str, Any]:
    row = await repository.get(conn, tenant_id, integration_id)
    if row is None:
        raise IntegrationNotFound(f"no integration {integration_id} in this tenant")
    return dict(row)


class ConnectorUnknown(InvalidRequest):
    code, title = "connector_unknown", "No such connector in the catalog"


class InvalidConfig(InvalidRequest):
    code, title = "invalid_config", "The configuration is invalid"


class AlreadyInstalled(Conflict):
    code, title = "already_installed", "Already installed"


class ConnectorWithdrawn(Conflict):
    code, title = "connector_withdrawn", "Every version of this connector was withdrawn"


def install_notice(name: str, verification: str | None) -> str | None:
    """What a tenant installing an entry should know about how far it is known to work: for one
    written from documentation only, that nobody checked it against the provider."""
    if verification != "described":
        return None
    return (f"{name} was written from the provider's API documentation only and has not been"
            " checked against the provider's API: check what its first sync reads and writes"
            " before relying on it.")  # fmt: skip


def offered_scopes(manifest: dict[str, Any]) -> list[str]:
    """The OAuth scopes a version's manifest offers."""
    return list((manifest.get("auth") or {}).get("scopes") or [])


async def create(
    conn: asyncpg.Connection,
    ring: KeyRing,
    *,
    tenant_id: uuid.UUID,
    actor: str,
    slug: str,
    connector_name: str | None,
    config: dict[str, Any],
    credentials: dict[str, str],
    scopes: list[str] | None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Install a catalog entry: every check first (a 422 lists all problems, a 409 breaks the
    single-instance rule), then the row, its encrypted credentials and an audit entry. The
    install comes back with the entry's ``verification`` level and, for an entry written from
    documentation only, a ``notice`` saying so."""
    entry = await repository.catalog_entry(conn, slug)
    if entry is None:
        raise ConnectorUnknown(f"the catalog has no connector '{slug}'")
    if entry["version"] is None:
        raise ConnectorWithdrawn(f"its publisher withdrew every version of '{slug}'")
    manifest = entry["manifest"] or {}
    found = config_rules.problems(
        manifest.get("config_schema", {}), config=config, credentials=credentials
    )
    unknown_scopes = sorted(set(scopes or []) - set(offered_scopes(manifest)))
    found += [{"path": "/scopes", "message": f"not offered: {s}"} for s in unknown_scopes]
    if found:
        raise InvalidConfig(f"{len(found)} problem(s) with this install", errors=found)
    if not entry["allow_multiple"] and await repository.count_installed(
        conn, tenant_id, entry["service_identifier"]
    ):
        raise AlreadyInstalled(f"'{slug}' allows one install per tenant and has one")
    if entry["endpoint_url"] is None:
        reason = "no deployed connector: the catalog entry has no endpoint yet"
    elif (manifest.get("auth") or {}).get("scheme") == "oauth2":
        reason = NOT_CONNECTED
    else:
        reason = "waiting for the first check"
    row = await repository.insert(
        conn,
        tenant_id=tenant_id,
        marketplace_connector_id=entry["id"],
        connector_name=connector_name or entry["name"],
        service_name=entry["service_identifier"],
        version=entry["version"],
        config=config,
        api_spec={"scopes": scopes or []},
        status_reason=reason,
        created_by=actor,
    )
    await credentials_service.store(
        conn, ring, tenant_id=tenant_id, integration_id=row["id"], secrets=credentials
    )
    await _audit(
        conn, "created", tenant_id=tenant_id, integration_id=row["id"], actor=actor,
        request_id=request_id, connector=slug, secret_fields=sorted(credentials),
    )  # fmt: skip
    verification = entry["verification"]
    return {**dict(row), "verification": verification,
            "notice": install_notice(entry["name"], verification)}  # fmt: skip


async def update(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    actor: str,
    config: dict[str, Any] | None,
    connector_name: str | None,
    sync_interval_seconds: int | None = None,
    request_id: str | None = None,
    if_match: IfMatch | None = None,
) -> dict[str, Any]:
    """Change the name, config or sync interval. With ``if_match`` only while the install's
    ETag is one of it (412 ``precondition_failed`` otherwise, nothing changed), compared with
    the row locked until the change commits: of two changes made against the same ETag, one
    applies and the other fails."""
    current = await _current(conn, tenant_id, integration_id, if_match)
    if config is not None:
        schema = await _config_schema(conn, current)
        stored = set(
            await credentials_service.fields_set(
                conn, tenant_id=tenant_id, integration_id=integration_id
            )
        )
        found = config_rules.problems(schema, config=config, credentials={}, stored_secrets=stored)
        if found:
            raise InvalidConfig(f"{len(found)} problem(s) with this config", errors=found)
    row = await repository.update(
        conn, tenant_id, integration_id, config=config, connector_name=connector_name,
        sync_interval_seconds=sync_interval_seconds,
    )  # fmt: skip
    await _audit(
        conn, "updated", tenant_id=tenant_id, integration_id=integration_id, actor=actor,
        request_id=request_id, config_changed=config is not None,
        sync_interval_seconds=sync_interval_seconds,
    )  # fmt: skip
    return dict(row)


async def _current(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    if_match: IfMatch | None,
) -> dict[str, Any]:
    """The install about to change; with a precondition, its row locked for the rest of the
    transaction first and the precondition checked on what the lock lets through."""
    if if_match is None:
        return await get_integration(conn, tenant_id=tenant_id, integration_id=integration_id)
    await repository.lock(conn, tenant_id, integration_id)
    current = await get_integration(conn, tenant_id=tenant_id, integration_id=integration_id)
    if_match.require(current)
    return current


async def set_enabled(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    actor: str,
    enabled: bool,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Disable (kept, not called), or enable again (pending until the next check)."""
    status, reason = ("pending", "enabled: waiting for a check") if enabled else (
        "disabled", "disabled by a user")  # fmt: skip
    row = await repository.update(
        conn, tenant_id, integration_id, status=status, status_reason=reason
    )
    if row is None:
        raise IntegrationNotFound(f"no integration {integration_id} in this tenant")
    await outbound_events.publish(
        conn, tenant_id=tenant_id, type=outbound_events.INTEGRATION_STATUS_CHANGED,
        integration_id=integration_id, data={"status": status, "reason": reason,
        "connector_name": row["connector_name"]},
    )  # fmt: skip
    await _audit(
        conn, "enabled" if enabled else "disabled", tenant_id=tenant_id,
        integration_id=integration_id, actor=actor, request_id=request_id,
    )  # fmt: skip
    return dict(row)


async def set_setup_progress(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    actor: str,
    done: list[int],
    request_id: str | None = None,
) -> dict[str, Any]:
    """Which of the setup guide's steps are done (their indices, kept sorted, each once)."""
    row = await repository.set_setup_done(conn, tenant_id, integration_id, sorted(set(done)))
    if row is None:
        raise IntegrationNotFound(f"no integration {integration_id} in this tenant")
    await _audit(
        conn, "setup_progress", tenant_id=tenant_id, integration_id=integration_id,
        actor=actor, request_id=request_id, done=row["setup_done"],
    )  # fmt: skip
    return dict(row)


async def delete(
    conn: asyncpg.Connection,
    ring: KeyRing,
    *,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    actor: str,
    request_id: str | None = None,
    oauth: OAuthConfig,
    if_match: IfMatch | None = None,
) -> None:
    """Uninstall: OAuth tokens revoked at the provider where it supports RFC 7009 (best effort,
    the outcome audited), then the credentials (counted for the audit entry) and the row.
    Dropping sync state comes with that feature. ``if_match`` as for :func:`update`."""
    current = await _current(conn, tenant_id, integration_id, if_match)
    pinned = await repository.pinned_version(
        conn, current["marketplace_connector_id"], current["version"]
    )
    revocation = await oauth_tokens.revoke_tokens(
        conn, ring, integration=current, manifest=(pinned or {}).get("manifest"), oauth=oauth
    )
    erased = await credentials_repository.delete_for_integration(
        conn, tenant_id=tenant_id, integration_id=integration_id
    )
    if not await repository.delete(conn, tenant_id, integration_id):
        raise IntegrationNotFound(f"no integration {integration_id} in this tenant")
    await _audit(
        conn, "deleted", tenant_id=tenant_id, integration_id=integration_id, actor=actor,
        request_id=request_id, credentials_erased=erased, token_revocation=revocation,
    )  # fmt: skip


async def put_credentials(
    conn: asyncpg.Connection,
    ring: KeyRing,
    *,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    actor: str,
    credentials: dict[str, str],
    request_id: str | None = None,
) -> list[str]:
    current = await get_integration(conn, tenant_id=tenant_id, integration_id=integration_id)
    schema = await _config_schema(conn, current)
    found = config_rules.credential_problems(schema, credentials, require=False)
    if found:
        raise InvalidConfig(f"{len(found)} problem(s) with these credentials", errors=found)
    await credentials_service.store(
        conn, ring, tenant_id=tenant_id, integration_id=integration_id, secrets=credentials
    )
    await _audit(
        conn, "credentials_set", tenant_id=tenant_id, integration_id=integration_id,
        actor=actor, request_id=request_id, fields=sorted(credentials),
    )  # fmt: skip
    return await credentials_service.fields_set(
        conn, tenant_id=tenant_id, integration_id=integration_id
    )


async def _config_schema(conn: asyncpg.Connection, integration: dict[str, Any]) -> dict[str, Any]:
    """The config schema of the version the install runs."""
    pinned = await repository.pinned_version(
        conn, integration["marketplace_connector_id"], integration["version"]
    )
    return ((pinned or {}).get("manifest") or {}).get("config_schema", {})


async def _audit(
    conn: asyncpg.Connection,
    action: str,
    *,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    actor: str,
    request_id: str | None,
    **details: Any,
) -> None:
    await audit.record(
        conn,
        tenant_id=tenant_id,
        actor=actor,
        action=f"integration.{action}",
        target=f"integration:{integration_id}",
        payload={"integration_id": str(integration_id), **details},
        request_id=request_id,
    )


async def credential_fields(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, integration_id: uuid.UUID
) -> list[str]:
    """Which secret fields an install has (404 when the install is not this tenant's)."""
    await get_integration(conn, tenant_id=tenant_id, integration_id=integration_id)
    return await credentials_service.fields_set(
        conn, tenant_id=tenant_id, integration_id=integration_id
    )
