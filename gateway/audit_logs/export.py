"""The audit trail as CSV (RFC 4180, UTF-8, CRLF), streamed: read page by page with the list's
keyset pagination, one short-lived connection per page, so neither the table nor a connection
is held while a slow client downloads."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

from common.db import Database
from gateway.audit_logs import service

# (column, what it holds), in order; the route's documentation lists them
COLUMNS = (
    ("seq", "position in the tenant's chain (1, 2, 3, ...)"),
    ("created_at", "when, ISO 8601 in UTC"),
    ("actor", "who acted: `user:<id>`, `apikey:<id>` or `system:<tool>`"),
    ("action", "what was done, e.g. `api_key.created`"),
    ("target", "what it was done to, e.g. `integration:<id>`"),
    ("details", "the entry's payload as JSON (never secrets)"),
    ("request_id", "the request that did it"),
    ("prev_hash", "SHA-256 of the previous entry (hex)"),
    ("hash", "SHA-256 of prev_hash and this entry (hex): check the chain offline"),
)
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection): such a
# cell is written with a leading apostrophe, which spreadsheets show as text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    """One value as CSV text a spreadsheet will not run."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def lines(rows: Iterable[Iterable[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)  # quotes what needs it, doubles quotes, CRLF line ends
    writer.writerows([cell(v) for v in row] for row in rows)
    return out.getvalue().encode()


def _row(entry: dict[str, Any]) -> list[Any]:
    values = {**entry, "details": entry["payload"]}
    return [values[name] for name, _ in COLUMNS]


async def stream(
    database: Database,
    *,
    tenant_id: uuid.UUID,
    filters: service.Filters,
    max_rows: int = service.EXPORT_MAX_ROWS,
    page_rows: int = service.EXPORT_PAGE_ROWS,
) -> AsyncIterator[bytes]:
    """The header row, then the matching entries newest first, at most ``max_rows``."""
    yield lines([[name for name, _ in COLUMNS]])
    sent, before = 0, None
    while sent < max_rows:
        limit = min(page_rows, max_rows - sent)
        async with database.connection() as conn:
            entries = await service.page(
                conn, tenant_id=tenant_id, filters=filters, before_seq=before, limit=limit
            )
        if entries:
            yield lines(_row(e) for e in entries)
        if len(entries) < limit:
            return
        sent, before = sent + len(entries), entries[-1]["seq"]
