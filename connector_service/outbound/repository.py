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
