"""The append-only audit trail every service writes, and the check of its hash chains.

Each tenant's entries (and the system's, ``tenant_id`` NULL) form a chain: a gapless sequence
``seq`` = 1, 2, 3, ... where each entry stores the previous entry's hash and its own,
``sha256(prev_hash || canonical JSON of the entry)``. A head row per chain records the last
sequence number and hash, written in the same transaction as the entry, so an edited, removed
or truncated entry shows in :func:`verify`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str).encode()


def entry_hash(prev_hash: bytes | None, entry: dict[str, Any]) -> bytes:
    return hashlib.sha256((prev_hash or b"") + _canonical(entry)).digest()


def canonical_entry(
    *,
    tenant_id: uuid.UUID | None,
    seq: int,
    actor: str | None,
    action: str,
    target: str | None,
    payload: Any,
    request_id: str | None,
    created_at: datetime,
) -> dict[str, Any]:
    """What an entry's hash covers. ``target`` only when set: entries written before it existed
    hash exactly as they did."""
    entry = {
        "tenant_id": str(tenant_id) if tenant_id else None,
        "seq": seq,
        "user_id": actor,
        "action": action,
        "payload": payload,
        "request_id": request_id,
        "created_at": created_at.isoformat(),
    }
    if target is not None:
        entry["target"] = target
    return entry


def _number_as_stored(text: str) -> float | int:
    # JSONB keeps numbers as NUMERIC and gives back 1e+16 as 10000000000000000 (an int once
    # parsed) and -0.0 as 0.0; hash the payload in the form it will be read back in.
    if "e+" in text or "E+" in text:
        return int(Decimal(text))
    return float(text) or 0.0


def stored_form(payload: dict[str, Any] | None) -> Any:
    """The payload as it reads back from JSONB (numbers normalised, keys strings)."""
    text = json.dumps(payload or {}, allow_nan=False)
    return json.loads(text, parse_float=_number_as_stored)


# Locks the chain's head row (creating it for a chain's first entry) and reads it. Two writers
# of one chain queue here until the first commits; no scan of audit_logs.
_LOCK_HEAD = """
INSERT INTO audit_chain_heads AS h (tenant_id, last_seq, last_hash) VALUES ($1, 0, NULL)
ON CONFLICT (tenant_id) DO UPDATE SET last_seq = h.last_seq
RETURNING last_seq, last_hash
"""
_APPEND = """
WITH head AS (
    INSERT INTO audit_chain_heads (tenant_id, last_seq, last_hash) VALUES ($1, $2, $9)
    ON CONFLICT (tenant_id) DO UPDATE
    SET last_seq = EXCLUDED.last_seq, last_hash = EXCLUDED.last_hash, updated_at = now()
)
INSERT INTO audit_logs (tenant_id, seq, user_id, action, target, payload, request_id,
                        prev_hash, hash, created_at)
VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8, $9, $10)
"""


async def record(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID | None,
    actor: str | None,
    action: str,
    target: str | None = None,
    payload: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> int:
    """Append one entry in the caller's transaction; returns its per-tenant sequence number.

    ``target`` names what the action is about (``integration:<uuid>``); ``payload`` must hold
    no secrets. The chain stays locked until the caller's transaction ends."""
    head = await conn.fetchrow(_LOCK_HEAD, tenant_id)
    seq = head["last_seq"] + 1
    prev = head["last_hash"]
    created_at = datetime.now(UTC)
    body = stored_form(payload)
    entry = canonical_entry(
        tenant_id=tenant_id, seq=seq, actor=actor, action=action, target=target, payload=body,
        request_id=request_id, created_at=created_at,
    )  # fmt: skip
    await conn.execute(
        _APPEND, tenant_id, seq, actor, action, target, json.dumps(body), request_id, prev,
        entry_hash(prev, entry), created_at,
    )  # fmt: skip
    return seq


@dataclass(frozen=True)
class Break:
    """The first broken link of one chain: the entry at ``seq`` and what is wrong with it."""

    tenant_id: uuid.UUID | None
    seq: int
    reason: str


@dataclass
class Verification:
    entries: int = 0
    chains: int = 0
    breaks: list[Break] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks


class _Chain:
    """Walks one chain in sequence order and remembers its first broken link."""

    def __init__(self, tenant_id: uuid.UUID | None, head: asyncpg.Record | None) -> None:
        self.tenant_id = tenant_id
        self.head = head
        self.next_seq = 1
        self.last_hash: bytes | None = None
        self.broken: Break | None = None

    def _break(self, seq: int, reason: str) -> None:
        self.broken = Break(self.tenant_id, seq, reason)

    def add(self, row: asyncpg.Record) -> None:
        if self.broken:
            return
        seq, expected = row["seq"], self.next_seq
        if seq != expected:
            after = f"goes from {expected - 1} to {seq}" if expected > 1 else f"starts at {seq}"
            return self._break(expected, f"entry {expected} is missing (the chain {after})")
        if row["prev_hash"] != self.last_hash:
            linked = f"the hash of entry {seq - 1}" if seq > 1 else "the start of the chain"
            return self._break(seq, f"prev_hash does not match {linked}")
        entry = canonical_entry(
            tenant_id=row["tenant_id"], seq=seq, actor=row["user_id"], action=row["action"],
            target=row["target"], payload=json.loads(row["payload"]),
            request_id=row["request_id"], created_at=row["created_at"],
        )  # fmt: skip
        if entry_hash(row["prev_hash"], entry) != row["hash"]:
            return self._break(seq, "hash mismatch: the entry was changed after it was written")
        self.next_seq, self.last_hash = seq + 1, row["hash"]

    def finish(self) -> Break | None:
        last = self.next_seq - 1
        if self.broken or (self.head is None and last == 0):
            return self.broken
        if self.head is None:
            self._break(last, "the chain has no head row")
            return self.broken
        head_seq = self.head["last_seq"]
        if last < head_seq:
            missing = (
                f"entries {last + 1}..{head_seq} are" if head_seq > last + 1
                else f"entry {head_seq} is"
            )  # fmt: skip
            self._break(
                last + 1,
                f"{missing} missing: the chain ends at {last} but its head records {head_seq}"
                " (entries removed from the end)",
            )
        elif last > head_seq:
            self._break(
                head_seq + 1,
                f"entries {head_seq + 1}..{last} are past the head's last_seq {head_seq} "
                "(not appended by the audit writer)",
            )
        elif self.head["last_hash"] != self.last_hash:
            self._break(last, f"the head's hash differs from the hash of entry {last}")
        return self.broken


_ENTRY_COLUMNS = (
    "tenant_id, seq, user_id, action, target, payload::text AS payload, request_id,"
    " prev_hash, hash, created_at"
)


async def verify(
    conn: asyncpg.Connection, tenant_id: uuid.UUID | None = None, *, batch: int = 1000
) -> Verification:
    """Recompute every chain (or one tenant's) and return the first broken link of each.

    Entries stream in ``batch``-sized fetches. Outside a transaction this opens a read-only
    repeatable-read one, so entries and heads are read from one snapshot while others write."""
    if conn.is_in_transaction():
        return await _verify(conn, tenant_id, batch)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await _verify(conn, tenant_id, batch)


async def _verify(
    conn: asyncpg.Connection, tenant_id: uuid.UUID | None, batch: int
) -> Verification:
    where, args = ("WHERE tenant_id = $1", [tenant_id]) if tenant_id else ("", [])
    heads = {
        row["tenant_id"]: row
        for row in await conn.fetch(
            f"SELECT tenant_id, last_seq, last_hash FROM audit_chain_heads {where}", *args
        )
    }
    result = Verification()
    chains: list[_Chain] = []
    query = f"SELECT {_ENTRY_COLUMNS} FROM audit_logs {where} ORDER BY tenant_id, seq"
    async for row in conn.cursor(query, *args, prefetch=batch):
        if not chains or chains[-1].tenant_id != row["tenant_id"]:
            chains.append(_Chain(row["tenant_id"], heads.pop(row["tenant_id"], None)))
        chains[-1].add(row)
        result.entries += 1
    chains += [_Chain(tid, head) for tid, head in heads.items()]  # heads without entries
    result.chains = len(chains)
    result.breaks = [b for chain in chains if (b := chain.finish()) is not None]
    return result
