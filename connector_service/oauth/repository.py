from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

import asyncpg

from common.crypto import Envelope
from connector_service.integrations import repository as integrations_repository

# An install with what connecting needs from its catalog entry (read-only here): the same row
# the ConnectorManager calls with.
integration = integrations_repository.call_target


async def catalog_slug(conn: asyncpg.Connection, entry_id: uuid.UUID | None) -> str | None:
    if entry_id is None:
        return None
    return await conn.fetchval("SELECT slug FROM marketplace_connectors WHERE id = $1", entry_id)


async def insert_state(
    conn: asyncpg.Connection,
    *,
    state_hash: bytes,
    start_hash: bytes,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    user_id: str,
    redirect_uri: str,
    return_to: str | None,
    scopes: list[str],
    verifier: Envelope,
    authorization_url: Envelope,
    ttl_seconds: int,
) -> datetime:
    """Record a connect in progress; returns when it expires (the database's clock)."""
    return await conn.fetchval(
        "INSERT INTO oauth_states (state_hash, start_hash, tenant_id, integration_id, user_id,"
        " redirect_uri, return_to, scopes, key_id, wrapped_key, nonce, ciphertext, url_key_id,"
        " url_wrapped_key, url_nonce, url_ciphertext, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,"
        " now() + make_interval(secs => $17)) RETURNING expires_at",
        state_hash,
        start_hash,
        tenant_id,
        integration_id,
        user_id,
        redirect_uri,
        return_to,
        scopes,
        verifier.key_id,
        verifier.wrapped_key,
        verifier.nonce,
        verifier.ciphertext,
        authorization_url.key_id,
        authorization_url.wrapped_key,
        authorization_url.nonce,
        authorization_url.ciphertext,
        ttl_seconds,
    )


async def open_start(
    conn: asyncpg.Connection, *, start_hash: bytes, binding_hash: bytes, opener: str | None
) -> asyncpg.Record | None:
    """Use a start token up, once, binding its connect to ``binding_hash``: of two concurrent
    openings, one gets the row. A connect a signed-in person started (``user:<id>``) is opened
    only by that person (``opener``); one an API key started, by whoever opens it first. An
    expired row comes back too (``expired``), for the caller to refuse (and roll back), and
    whether the tenant is suspended (``suspended``: the gateway does not authenticate the
    public connect paths, so they ask here)."""
    return await conn.fetchrow(
        "UPDATE oauth_states SET start_hash = NULL, binding_hash = $2, started_at = now()"
        " WHERE start_hash = $1 AND (user_id NOT LIKE 'user:%' OR user_id = $3)"
        " RETURNING tenant_id, integration_id, user_id LIKE 'user:%' AS person, url_key_id,"
        " url_wrapped_key, url_nonce, url_ciphertext, expires_at <= now() AS expired,"
        " EXISTS (SELECT 1 FROM tenants t WHERE t.id = oauth_states.tenant_id"
        " AND t.suspended_at IS NOT NULL) AS suspended",
        start_hash,
        binding_hash,
        opener,
    )


async def start_owner(conn: asyncpg.Connection, start_hash: bytes) -> str | None:
    """Who started the connect whose start token this is (not used up), or None."""
    return await conn.fetchval("SELECT user_id FROM oauth_states WHERE start_hash = $1", start_hash)


async def consume_state(conn: asyncpg.Connection, state_hash: bytes) -> asyncpg.Record | None:
    """Take a state out, once: of two concurrent callbacks with it, one gets the row (with
    ``expired`` and ``suspended``, as :func:`open_start`)."""
    return await conn.fetchrow(
        "DELETE FROM oauth_states WHERE state_hash = $1 RETURNING tenant_id, integration_id,"
        " user_id, redirect_uri, return_to, scopes, key_id, wrapped_key, nonce, ciphertext,"
        " binding_hash, started_at, expires_at <= now() AS expired,"
        " EXISTS (SELECT 1 FROM tenants t WHERE t.id = oauth_states.tenant_id"
        " AND t.suspended_at IS NOT NULL) AS suspended",
        state_hash,
    )


async def delete_expired_states(conn: asyncpg.Connection, *, older_than_seconds: int) -> int:
    result = await conn.execute(
        "DELETE FROM oauth_states WHERE expires_at < now() - make_interval(secs => $1)",
        older_than_seconds,
    )
    return int(result.split()[-1])


async def lock_refresh(conn: asyncpg.Connection, integration_id: uuid.UUID) -> None:
    """Serialize token refreshes of one install across processes, until the transaction ends."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('oauth-refresh:' || $1))", str(integration_id)
    )


async def delete_credential_fields(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    fields: Iterable[str],
) -> None:
    await conn.execute(
        "DELETE FROM credentials WHERE tenant_id = $1 AND integration_id = $2"
        " AND field = ANY($3::text[])",
        tenant_id,
        integration_id,
        list(fields),
    )
