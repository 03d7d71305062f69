"""The SQL of offline replays: the clients' owners and sequence numbers, and the answers kept
with their Idempotency-Keys (``idempotency_keys``, scope ``offline``)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

SCOPE = "offline"


def scope(client_id: str) -> str:
    """Where a client's keys are kept: its own namespace, so one client's keys (and the answers
    kept with them) are never another's, whoever knows them."""
    return f"{SCOPE}:{client_id}"


async def client(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, client_id: str, subject: str
) -> asyncpg.Record:
    """The client's row, made for ``subject`` the first time it is seen."""
    await conn.execute(
        "INSERT INTO offline_clients (tenant_id, client_id, subject) VALUES ($1, $2, $3)"
        " ON CONFLICT (tenant_id, client_id) DO NOTHING",
        tenant_id, client_id, subject,
    )  # fmt: skip
    return await conn.fetchrow(
        "SELECT subject, last_seq FROM offline_clients WHERE tenant_id = $1 AND client_id = $2",
        tenant_id, client_id,
    )  # fmt: skip


async def complete(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, client_id: str, seq: int
) -> bool:
    """Move the client's last completed number to ``seq`` if it was just before: False when
    another replay of the same queue got there first."""
    done = await conn.execute(
        "UPDATE offline_clients SET last_seq = $3, updated_at = now()"
        " WHERE tenant_id = $1 AND client_id = $2 AND last_seq = $3 - 1",
        tenant_id, client_id, seq,
    )  # fmt: skip
    return done == "UPDATE 1"


async def kept_answer(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, client_id: str, key: str
) -> dict[str, Any] | None:
    """What a completed item with this key answered (None once its key expired)."""
    row = await conn.fetchrow(
        "SELECT response_status, response_body FROM idempotency_keys"
        " WHERE tenant_id = $1 AND scope = $2 AND idempotency_key = $3 AND state = 'completed'",
        tenant_id, scope(client_id), key,
    )  # fmt: skip
    return dict(row) if row else None
