"""Storing, reading and re-wrapping credentials. Plaintext exists only in memory, on its way to a
connector; what is stored is one envelope per secret field (common/crypto.py)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from common.crypto import Envelope, KeyRing, associated_data
from connector_service.credentials import repository

REWRAP_BATCH = 500


async def store(
    conn: asyncpg.Connection,
    ring: KeyRing,
    *,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    secrets: dict[str, str],
) -> list[str]:
    """Encrypt and store each secret field (replacing an earlier value); returns the fields."""
    for field, value in secrets.items():
        envelope = ring.encrypt(
            value.encode(), aad=associated_data(tenant_id, integration_id, field)
        )
        await repository.upsert(
            conn, tenant_id=tenant_id, integration_id=integration_id, field=field,
            envelope=envelope,
        )  # fmt: skip
    return sorted(secrets)


async def load(
    conn: asyncpg.Connection, ring: KeyRing, *, tenant_id: uuid.UUID, integration_id: uuid.UUID
) -> dict[str, str]:
    """The decrypted secrets of an install, for a call to its connector."""
    rows = await repository.for_integration(
        conn, tenant_id=tenant_id, integration_id=integration_id
    )
    return {
        row["field"]: ring.decrypt(
            _envelope(row), aad=associated_data(tenant_id, integration_id, row["field"])
        ).decode()
        for row in rows
    }


async def fields_set(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, integration_id: uuid.UUID
) -> list[str]:
    """Which secret fields are stored (what an API may show instead of the values)."""
    rows = await repository.for_integration(
        conn, tenant_id=tenant_id, integration_id=integration_id
    )
    return [row["field"] for row in rows]


async def rewrap_all(conn: asyncpg.Connection, ring: KeyRing) -> int:
    """Re-wrap every data key not wrapped by the primary key, a batch per transaction; returns
    how many envelopes changed. Safe to interrupt and run again: an envelope is either re-wrapped
    or still wrapped by a key the ring keeps."""
    total = 0
    while True:
        async with conn.transaction():
            rows = await repository.wrapped_by_other_keys(
                conn, primary=ring.primary, limit=REWRAP_BATCH
            )
            for row in rows:
                aad = associated_data(row["tenant_id"], row["integration_id"], row["field"])
                new = ring.rewrap(_envelope(row), aad=aad)
                await repository.set_wrapping(
                    conn, credential_id=row["id"], key_id=new.key_id, wrapped_key=new.wrapped_key
                )
        total += len(rows)
        if len(rows) < REWRAP_BATCH:
            return total


def _envelope(row: Any) -> Envelope:
    return Envelope(row["key_id"], row["wrapped_key"], row["nonce"], row["ciphertext"])
