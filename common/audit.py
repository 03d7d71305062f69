"""The append-only audit writer every service uses: a per-tenant sequence and hash chain."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str).encode()


def entry_hash(prev_hash: bytes | None, entry: dict[str, Any]) -> bytes:
    return hashlib.sha256((prev_hash or b"") + _canonical(entry)).digest()


async def record(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID | None,
    actor: str | None,
    action: str,
    payload: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> int:
    """Append one entry in the caller's transaction; returns its per-tenant sequence number."""
    lock_key = str(tenant_id) if tenant_id else "system"
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('audit:' || $1))", lock_key)
    last = await conn.fetchrow(
        "SELECT seq, hash FROM audit_logs WHERE tenant_id IS NOT DISTINCT FROM $1"
        " ORDER BY seq DESC LIMIT 1",
        tenant_id,
    )
    seq = (last["seq"] + 1) if last else 1
    prev = last["hash"] if last else None
    created_at = datetime.now(UTC)
    body = payload or {}
    entry = {
        "tenant_id": str(tenant_id) if tenant_id else None,
        "seq": seq,
        "user_id": actor,
        "action": action,
        "payload": body,
        "request_id": request_id,
        "created_at": created_at.isoformat(),
    }
    await conn.execute(
        "INSERT INTO audit_logs (tenant_id, seq, user_id, action, payload, request_id,"
        " prev_hash, hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        tenant_id,
        seq,
        actor,
        action,
        body,
        request_id,
        prev,
        entry_hash(prev, entry),
        created_at,
    )
    return seq
