"""Every line of SQL of outbound webhooks and email: endpoints, secrets, events, deliveries,
attempts. Functions take a connection and run in the caller's transaction."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

_INSERT_EVENT = """
WITH webhook AS (
    SELECT ep.id FROM outbound_endpoints ep
    WHERE ep.tenant_id = $2 AND ep.enabled AND $3 = ANY (ep.event_types)
), admin AS (
    SELECT m.user_id FROM memberships m WHERE $6 AND m.tenant_id = $2 AND m.role = 'admin'
), event AS (
    INSERT INTO outbound_events (id, tenant_id, type, integration_id, data)
    SELECT $1, $2, $3, $4, $5::jsonb
    WHERE EXISTS (SELECT 1 FROM webhook) OR EXISTS (SELECT 1 FROM admin)
    RETURNING id
), to_endpoints AS (
    INSERT INTO outbound_deliveries (event_id, tenant_id, endpoint_id)
    SELECT event.id, $2, webhook.id FROM event, webhook
)
INSERT INTO outbound_deliveries (event_id, tenant_id, user_id)
SELECT event.id, $2, admin.user_id FROM event, admin
"""


# The same, the tenant being the install's: for hooks that know the install only (platform-side
# record edits); one statement still.
_INSERT_EVENT_OF_INSTALL = _INSERT_EVENT.replace(
    "WITH webhook AS (",
    "WITH owner AS (SELECT tenant_id FROM integration_connectors WHERE id = $4), webhook AS (",
    1,
).replace("$2", "coalesce($2::uuid, (SELECT tenant_id FROM owner))")


async def insert_event_of_install(
    conn: asyncpg.Connection,
    *,
    event_id: uuid.UUID,
    integration_id: uuid.UUID,
    type: str,
    data: dict[str, Any],
    email: bool,
) -> None:
    await conn.execute(_INSERT_EVENT_OF_INSTALL, event_id, None, type, integration_id, data, email)


async def insert_event(
    conn: asyncpg.Connection,
    *,
    event_id: uuid.UUID,
    tenant_id: uuid.UUID,
    type: str,
    data: dict[str, Any],
    integration_id: uuid.UUID | None,
    email: bool,
) -> None:
    """The event and one delivery per subscribed enabled endpoint (and per admin when
    ``email``), in one statement; nothing when there is nobody to tell."""
    await conn.execute(_INSERT_EVENT, event_id, tenant_id, type, integration_id, data, email)


# ---------------------------------------------------------------------------------- endpoints

_ENDPOINT = (
    "SELECT id, tenant_id, url, description, event_types, enabled, failing_since,"
    " disabled_reason, created_at, updated_at FROM outbound_endpoints"
)


async def create_endpoint(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    url: str,
    description: str,
    event_types: list[str],
) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO outbound_endpoints (tenant_id, url, description, event_types)"
        " VALUES ($1, $2, $3, $4) RETURNING id, tenant_id, url, description, event_types,"
        " enabled, failing_since, disabled_reason, created_at, updated_at",
        tenant_id, url, description, event_types,
    )  # fmt: skip


async def list_endpoints(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(_ENDPOINT + " WHERE tenant_id = $1 ORDER BY created_at, id", tenant_id)


async def get_endpoint(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, endpoint_id: uuid.UUID, *, lock: bool = False
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        _ENDPOINT + " WHERE tenant_id = $1 AND id = $2" + (" FOR UPDATE" if lock else ""),
        tenant_id, endpoint_id,
    )  # fmt: skip


async def update_endpoint(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    *,
    url: str | None,
    description: str | None,
    event_types: list[str] | None,
    enabled: bool | None,
) -> asyncpg.Record | None:
    """Change what is given (None keeps a column). Enabling clears the failure streak."""
    return await conn.fetchrow(
        "UPDATE outbound_endpoints SET url = coalesce($3, url),"
        " description = coalesce($4, description), event_types = coalesce($5, event_types),"
        " enabled = coalesce($6, enabled),"
        " failing_since = CASE WHEN $6 THEN NULL ELSE failing_since END,"
        " disabled_reason = CASE WHEN $6 IS NULL THEN disabled_reason"
        "   WHEN $6 THEN NULL ELSE 'disabled by a user' END,"
        " updated_at = now() WHERE tenant_id = $1 AND id = $2"
        " RETURNING id, tenant_id, url, description, event_types, enabled, failing_since,"
        " disabled_reason, created_at, updated_at",
        tenant_id, endpoint_id, url, description, event_types, enabled,
    )  # fmt: skip


async def delete_endpoint(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, endpoint_id: uuid.UUID
) -> bool:
    return bool(
        await conn.fetchval(
            "DELETE FROM outbound_endpoints WHERE tenant_id = $1 AND id = $2 RETURNING TRUE",
            tenant_id,
            endpoint_id,
        )
    )


async def cancel_pending(conn: asyncpg.Connection, endpoint_ids: list[uuid.UUID]) -> int:
    """Pending deliveries of endpoints just disabled: cancelled (replayable one by one)."""
    done = await conn.execute(
        "UPDATE outbound_deliveries SET state = 'cancelled', finished_at = now()"
        " WHERE endpoint_id = ANY ($1::uuid[]) AND state = 'pending'",
        endpoint_ids,
    )
    return int(done.split()[-1])


# ---------------------------------------------------------------------------------- secrets


async def add_secret(
    conn: asyncpg.Connection,
    endpoint_id: uuid.UUID,
    *,
    key_id: str,
    wrapped_key: bytes,
    nonce: bytes,
    ciphertext: bytes,
    grace_seconds: float,
) -> None:
    """A new current secret; the current ones until now keep signing for ``grace_seconds``
    (those already expiring keep their earlier end)."""
    await conn.execute(
        "UPDATE outbound_endpoint_secrets"
        " SET expires_at = now() + $2 * interval '1 second'"
        " WHERE endpoint_id = $1 AND expires_at IS NULL",
        endpoint_id, grace_seconds,
    )  # fmt: skip
    await conn.execute(
        "DELETE FROM outbound_endpoint_secrets WHERE endpoint_id = $1 AND expires_at <= now()",
        endpoint_id,
    )
    await conn.execute(
        "INSERT INTO outbound_endpoint_secrets (endpoint_id, key_id, wrapped_key, nonce,"
        " ciphertext) VALUES ($1, $2, $3, $4, $5)",
        endpoint_id, key_id, wrapped_key, nonce, ciphertext,
    )  # fmt: skip


async def signing_secrets(
    conn: asyncpg.Connection, endpoint_ids: list[uuid.UUID]
) -> list[asyncpg.Record]:
    """The secrets that sign now (current, and rotated ones within their grace), newest first."""
    return await conn.fetch(
        "SELECT s.id, s.endpoint_id, ep.tenant_id, s.key_id, s.wrapped_key, s.nonce,"
        " s.ciphertext, s.expires_at FROM outbound_endpoint_secrets s"
        " JOIN outbound_endpoints ep ON ep.id = s.endpoint_id"
        " WHERE s.endpoint_id = ANY ($1::uuid[]) AND (s.expires_at IS NULL OR s.expires_at > now())"
        " ORDER BY s.endpoint_id, s.id DESC",
        endpoint_ids,
    )


async def secrets_summary(conn: asyncpg.Connection, endpoint_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT created_at, expires_at FROM outbound_endpoint_secrets"
        " WHERE endpoint_id = $1 AND (expires_at IS NULL OR expires_at > now()) ORDER BY id DESC",
        endpoint_id,
    )


# ---------------------------------------------------------------------------------- deliveries


async def list_deliveries(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    *,
    limit: int,
    before: tuple[Any, uuid.UUID] | None = None,
) -> list[asyncpg.Record]:
    """A page newest first, in (created_at, id) descending order, strictly after ``before``
    (deliveries published in one transaction share created_at)."""
    before_at, before_id = before if before else (None, None)
    return await conn.fetch(
        "SELECT d.id, d.event_id, e.type, d.state, d.attempts, d.next_at, d.created_at,"
        " d.finished_at, d.replay_of FROM outbound_deliveries d"
        " JOIN outbound_events e ON e.id = d.event_id"
        " WHERE d.tenant_id = $1 AND d.endpoint_id = $2"
        " AND ($3::timestamptz IS NULL OR (d.created_at, d.id) < ($3, $5::uuid))"
        " ORDER BY d.created_at DESC, d.id DESC LIMIT $4",
        tenant_id, endpoint_id, before_at, limit, before_id,
    )  # fmt: skip


async def attempts_of(
    conn: asyncpg.Connection, delivery_ids: list[uuid.UUID]
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT delivery_id, at, ok, status, duration_ms, response, error"
        " FROM outbound_attempts WHERE delivery_id = ANY ($1::uuid[]) ORDER BY delivery_id, id",
        delivery_ids,
    )


async def get_delivery(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, delivery_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT d.id, d.event_id, d.endpoint_id, e.type, d.state, d.attempts, d.next_at,"
        " d.created_at, d.finished_at, d.replay_of FROM outbound_deliveries d"
        " JOIN outbound_events e ON e.id = d.event_id WHERE d.tenant_id = $1 AND d.id = $2",
        tenant_id, delivery_id,
    )  # fmt: skip


async def replay(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, delivery_id: uuid.UUID
) -> uuid.UUID:
    """A new delivery of the same event to the same endpoint, due now."""
    return await conn.fetchval(
        "INSERT INTO outbound_deliveries (event_id, tenant_id, endpoint_id, replay_of)"
        " SELECT event_id, tenant_id, endpoint_id, id FROM outbound_deliveries"
        " WHERE tenant_id = $1 AND id = $2 RETURNING id",
        tenant_id, delivery_id,
    )  # fmt: skip


async def insert_direct(
    conn: asyncpg.Connection,
    *,
    event_id: uuid.UUID,
    tenant_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    type: str,
    data: dict[str, Any],
) -> uuid.UUID:
    """An event sent to one endpoint only (a test event), and its delivery."""
    await conn.execute(
        "INSERT INTO outbound_events (id, tenant_id, type, data) VALUES ($1, $2, $3, $4::jsonb)",
        event_id, tenant_id, type, data,
    )  # fmt: skip
    return await conn.fetchval(
        "INSERT INTO outbound_deliveries (event_id, tenant_id, endpoint_id) VALUES ($1, $2, $3)"
        " RETURNING id",
        event_id, tenant_id, endpoint_id,
    )  # fmt: skip
