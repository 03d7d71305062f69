"""The demo CRM's rules: listing with keyset cursors, creating, updating and deleting records.

Routes call these; every SQL statement lives in :mod:`.store`. Writes are no-ops (no new
``updated_at``) when they would change nothing, so a sync that writes back what it read does not
produce an echo.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from . import store
from .errors import Conflict, InvalidRequest, NotFound
from .store import CONTACTS, Database, Kind, Row, Transaction

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_MANGLED_OFFSET = re.compile(r" (\d{2}:?\d{2})$")  # "+00:00" whose "+" became a space


def format_timestamp(us: int) -> str:
    """ISO 8601 in UTC with microseconds, e.g. ``2025-01-31T12:00:00.000001Z``."""
    seconds, micros = divmod(us, 1_000_000)
    return f"{_format_second(seconds)}.{micros:06d}Z"


@lru_cache(maxsize=4096)
def _format_second(seconds: int) -> str:
    # Pages hold runs of timestamps from the same second: format each second once.
    return (EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")


def parse_timestamp(text: str) -> int:
    """Microseconds since the epoch from ISO 8601 (naive means UTC)."""
    try:
        moment = datetime.fromisoformat(_MANGLED_OFFSET.sub(r"+\1", text.strip()))
    except ValueError:
        raise InvalidRequest(f"not an ISO 8601 timestamp: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // _ONE_US


def encode_cursor(updated_at: int, record_id: str) -> str:
    raw = json.dumps([updated_at, record_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        updated_at, record_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidRequest("malformed cursor", code="invalid_cursor") from None
    if not isinstance(updated_at, int) or not isinstance(record_id, str):
        raise InvalidRequest("malformed cursor", code="invalid_cursor")
    return updated_at, record_id


def to_record(kind: Kind, row: Row) -> dict[str, Any]:
    """The JSON shape of one row; tombstones carry ``"deleted": true`` and ``deleted_at``."""
    *values, created_at, updated_at, deleted_at = row
    record = dict(zip(kind.columns, values, strict=False))
    record["created_at"] = format_timestamp(created_at)
    record["updated_at"] = format_timestamp(updated_at)
    record["deleted_at"] = None if deleted_at is None else format_timestamp(deleted_at)
    record["deleted"] = deleted_at is not None
    return record


async def list_records(
    db: Database,
    kind: Kind,
    *,
    limit: int,
    cursor: str | None = None,
    updated_after: str | None = None,
    include_deleted: bool | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page ordered by ``(updated_at, id)`` and the cursor of the next (``None`` at the end).

    ``updated_after`` keeps records changed strictly after that moment, tombstones included
    unless ``include_deleted`` is false; without it tombstones are left out unless asked for.
    """
    after = (-1, "")
    if updated_after is not None:
        after = (parse_timestamp(updated_after), "\U0010ffff")
    if cursor is not None:
        after = max(after, decode_cursor(cursor))
    if include_deleted is None:
        include_deleted = updated_after is not None
    rows = await db.read(
        store.select_page, kind, after=after, live_only=not include_deleted, limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = dict(zip(kind.columns, rows[-1], strict=True))
        next_cursor = encode_cursor(last["updated_at"], last["id"])
    return [to_record(kind, row) for row in rows], next_cursor


async def get_record(db: Database, kind: Kind, record_id: str) -> dict[str, Any]:
    """A live record; :class:`NotFound` for unknown and deleted ids."""
    row = await db.read(store.select_one, kind, record_id)
    if row is None or _is_tombstone(kind, row):
        raise NotFound(f"no {kind.table[:-1]} {record_id!r}")
    return to_record(kind, row)


async def create_record(
    db: Database, kind: Kind, values: dict[str, Any], *, record_id: str | None = None
) -> tuple[dict[str, Any], bool]:
    """Create a record; with a client-chosen id, repeating the same create is harmless.

    Returns the record and whether it was created (``False``: an identical live record with this
    id already existed). A different record under that id is a :class:`Conflict`.
    """

    def run(tx: Transaction) -> tuple[Row, bool]:
        new_id = record_id or kind.id_prefix + uuid.uuid4().hex
        existing = store.select_one(tx.conn, kind, new_id)
        if existing is not None:
            if not _is_tombstone(kind, existing) and _same(kind, existing, values):
                return existing, False
            raise Conflict(f"{kind.table[:-1]} {new_id!r} already exists", code="id_exists")
        _check_unique(tx, kind, new_id, values)
        store.insert(tx, kind, new_id, values)
        return _reload(tx, kind, new_id), True

    row, created = await db.write(run)
    return to_record(kind, row), created


async def update_record(
    db: Database, kind: Kind, record_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change some fields of a live record."""

    def run(tx: Transaction) -> Row:
        existing = store.select_one(tx.conn, kind, record_id)
        if existing is None or _is_tombstone(kind, existing):
            raise NotFound(f"no {kind.table[:-1]} {record_id!r}")
        current = dict(zip(kind.columns, existing, strict=True))
        changed = {f: v for f, v in changes.items() if current[f] != v}
        if not changed:
            return existing
        _check_unique(tx, kind, record_id, changed)
        store.update(tx, kind, record_id, changed)
        return _reload(tx, kind, record_id)

    return to_record(kind, await db.write(run))


async def replace_record(
    db: Database, kind: Kind, record_id: str, values: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """Create or fully replace (and undelete) the record with this id; ``True`` if created."""
    full = {field: values.get(field) for field in kind.fields}

    def run(tx: Transaction) -> tuple[Row, bool]:
        existing = store.select_one(tx.conn, kind, record_id)
        if (
            existing is not None
            and not _is_tombstone(kind, existing)
            and _same(kind, existing, full)
        ):
            return existing, False
        _check_unique(tx, kind, record_id, full)
        if existing is None:
            store.insert(tx, kind, record_id, full)
        else:
            store.update(tx, kind, record_id, full)
        return _reload(tx, kind, record_id), existing is None

    row, created = await db.write(run)
    return to_record(kind, row), created


async def delete_record(db: Database, kind: Kind, record_id: str) -> None:
    """Keep the record as a tombstone; deleting a tombstone again changes nothing."""

    def run(tx: Transaction) -> None:
        existing = store.select_one(tx.conn, kind, record_id)
        if existing is None:
            raise NotFound(f"no {kind.table[:-1]} {record_id!r}")
        if not _is_tombstone(kind, existing):
            store.mark_deleted(tx, kind, record_id)

    await db.write(run)


def _is_tombstone(kind: Kind, row: Row) -> bool:
    return row[len(kind.columns) - 1] is not None


def _same(kind: Kind, row: Row, values: dict[str, Any]) -> bool:
    current = dict(zip(kind.columns, row, strict=True))
    return all(current[field] == values.get(field) for field in kind.fields)


def _check_unique(tx: Transaction, kind: Kind, record_id: str, values: dict[str, Any]) -> None:
    if kind is CONTACTS and values.get("email"):
        other = store.live_contact_with_email(tx.conn, values["email"], other_than=record_id)
        if other is not None:
            raise Conflict(
                f"contact {other!r} already has the email {values['email']!r}",
                code="duplicate_email",
            )


def _reload(tx: Transaction, kind: Kind, record_id: str) -> Row:
    row = store.select_one(tx.conn, kind, record_id)
    assert row is not None
    return row
