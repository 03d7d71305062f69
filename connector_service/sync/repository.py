"""SQL of the sync framework (cursors, outbox, runs)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import asyncpg


async def cursors(conn: asyncpg.Connection, integration_id: uuid.UUID) -> dict[str, str | None]:
    rows = await conn.fetch(
        'SELECT stream, "cursor" FROM sync_cursors WHERE integration_id = $1', integration_id
    )
    return {r["stream"]: r["cursor"] for r in rows}


async def save_cursor(
    conn: asyncpg.Connection, integration_id: uuid.UUID, stream: str, cursor: str | None
) -> None:
    await conn.execute(
        'INSERT INTO sync_cursors (integration_id, stream, "cursor") VALUES ($1, $2, $3)'
        ' ON CONFLICT (integration_id, stream) DO UPDATE SET "cursor" = EXCLUDED."cursor",'
        " updated_at = now()",
        integration_id,
        stream,
        cursor,
    )


async def reset_cursors(conn: asyncpg.Connection, integration_id: uuid.UUID) -> None:
    """Pull everything again: no cursors, and first loads in progress start over."""
    await conn.execute("DELETE FROM sync_cursors WHERE integration_id = $1", integration_id)
    await conn.execute("DELETE FROM sync_loads WHERE integration_id = $1", integration_id)


# a change to a record already in the outbox: its fields accumulated, its version bumped, a dead
# letter revived
_ACCUMULATE = (
    " ON CONFLICT (integration_id, stream, record_key) DO UPDATE SET"
    " fields = ARRAY(SELECT DISTINCT unnest(sync_outbox.fields || EXCLUDED.fields)),"
    " deleted = EXCLUDED.deleted, version = sync_outbox.version + 1, state = 'pending',"
    " attempts = 0, next_attempt_at = now(), first_failed_at = NULL, last_error = NULL,"
    " updated_at = now()"
)


async def enqueue(
    conn: asyncpg.Connection,
    integration_id: uuid.UUID,
    changes: Iterable[tuple[str, str, list[str], bool]],
) -> None:
    """Platform-side changes (stream, primary key, fields, deleted) into the outbox: one row per
    record, its changed fields accumulated, its version bumped, a dead letter revived."""
    rows = list(changes)
    if not rows:
        return
    streams, keys, fields, deleted = zip(*rows, strict=True)
    await conn.execute(
        "INSERT INTO sync_outbox (integration_id, stream, record_key, fields, deleted)"
        " SELECT $1, s, k, ARRAY(SELECT jsonb_array_elements_text(f::jsonb)), d"
        " FROM unnest($2::text[], $3::text[], $4::text[], $5::bool[]) AS c(s, k, f, d)"
        + _ACCUMULATE,
        integration_id,
        list(streams),
        list(keys),
        [json.dumps(f) for f in fields],  # a list per row: as JSON text, not a 2-D array
        list(deleted),
    )


async def rekey(
    conn: asyncpg.Connection, integration_id: uuid.UUID, stream: str, moves: list[tuple[str, str]]
) -> None:
    """The outbox rows of records that moved to a new key (``moves``: old key, new key) follow
    them, accumulated into a row the new key may have. Every old row is taken out first: a new
    key may be another move's old one."""
    rows = await conn.fetch(
        "DELETE FROM sync_outbox WHERE integration_id = $1 AND stream = $2"
        " AND record_key = ANY($3::text[]) RETURNING record_key, fields, deleted",
        integration_id, stream, [old for old, _new in moves],
    )  # fmt: skip
    taken = {r["record_key"]: r for r in rows}
    for old, new in moves:
        if (row := taken.get(old)) is None:
            continue
        await conn.execute(
            "INSERT INTO sync_outbox (integration_id, stream, record_key, fields, deleted)"
            " VALUES ($1, $2, $3, $4, $5)" + _ACCUMULATE,
            integration_id, stream, new, row["fields"], row["deleted"],
        )  # fmt: skip


async def pending_fields(
    conn: asyncpg.Connection, integration_id: uuid.UUID, stream: str
) -> dict[str, set[str] | None]:
    """Records of a stream with platform changes not yet written: their fields (None: the
    record was deleted on the platform)."""
    rows = await conn.fetch(
        "SELECT record_key, fields, deleted FROM sync_outbox"
        " WHERE integration_id = $1 AND stream = $2",
        integration_id,
        stream,
    )
    return {r["record_key"]: None if r["deleted"] else set(r["fields"]) for r in rows}


async def due(conn: asyncpg.Connection, integration_id: uuid.UUID, limit: int) -> list[Any]:
    return await conn.fetch(
        "SELECT id, stream, record_key, deleted, version, attempts, first_failed_at"
        " FROM sync_outbox WHERE integration_id = $1 AND state = 'pending'"
        " AND next_attempt_at <= now() ORDER BY id LIMIT $2",
        integration_id,
        limit,
    )


async def integrations_due(conn: asyncpg.Connection, limit: int) -> list[uuid.UUID]:
    """Installs with outbox rows due, except those of suspended tenants (their rows wait)."""
    rows = await conn.fetch(
        "SELECT DISTINCT o.integration_id FROM sync_outbox o"
        " JOIN integration_connectors ic ON ic.id = o.integration_id"
        " JOIN tenants t ON t.id = ic.tenant_id"
        " WHERE o.state = 'pending' AND o.next_attempt_at <= now() AND t.suspended_at IS NULL"
        " LIMIT $1",
        limit,
    )
    return [r["integration_id"] for r in rows]


async def done(conn: asyncpg.Connection, outbox_id: int, version: int) -> None:
    """Written: gone from the outbox, unless the record changed again meanwhile."""
    await conn.execute("DELETE FROM sync_outbox WHERE id = $1 AND version = $2", outbox_id, version)


async def retry_later(
    conn: asyncpg.Connection, outbox_id: int, version: int, *, wait_seconds: float, error: str
) -> None:
    await conn.execute(
        "UPDATE sync_outbox SET attempts = attempts + 1, last_error = $3,"
        " next_attempt_at = now() + make_interval(secs => $4),"
        " first_failed_at = COALESCE(first_failed_at, now()), updated_at = now()"
        " WHERE id = $1 AND version = $2",
        outbox_id,
        version,
        error[:2000],
        wait_seconds,
    )


async def dead(conn: asyncpg.Connection, outbox_id: int, version: int, *, error: str) -> None:
    await conn.execute(
        "UPDATE sync_outbox SET state = 'dead', attempts = attempts + 1, last_error = $3,"
        " first_failed_at = COALESCE(first_failed_at, now()), updated_at = now()"
        " WHERE id = $1 AND version = $2",
        outbox_id,
        version,
        error[:2000],
    )


async def dead_letters(
    conn: asyncpg.Connection, integration_id: uuid.UUID, *, after: int | None, limit: int
) -> list[Any]:
    return await conn.fetch(
        "SELECT id, stream, record_key, deleted, fields, attempts, last_error, first_failed_at,"
        " updated_at FROM sync_outbox WHERE integration_id = $1 AND state = 'dead'"
        " AND ($2::bigint IS NULL OR id > $2) ORDER BY id LIMIT $3",
        integration_id,
        after,
        limit,
    )


async def revive(conn: asyncpg.Connection, integration_id: uuid.UUID, outbox_id: int) -> bool:
    result = await conn.execute(
        "UPDATE sync_outbox SET state = 'pending', attempts = 0, next_attempt_at = now(),"
        " first_failed_at = NULL, updated_at = now()"
        " WHERE id = $1 AND integration_id = $2 AND state = 'dead'",
        outbox_id,
        integration_id,
    )
    return result.endswith(" 1")


async def discard(conn: asyncpg.Connection, integration_id: uuid.UUID, outbox_id: int) -> bool:
    result = await conn.execute(
        "DELETE FROM sync_outbox WHERE id = $1 AND integration_id = $2 AND state = 'dead'",
        outbox_id,
        integration_id,
    )
    return result.endswith(" 1")


async def outbox_counts(conn: asyncpg.Connection, integration_id: uuid.UUID) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT state, count(*) AS n FROM sync_outbox WHERE integration_id = $1 GROUP BY state",
        integration_id,
    )
    counts = {r["state"]: r["n"] for r in rows}
    return {"pending": counts.get("pending", 0), "dead": counts.get("dead", 0)}


async def start_run(
    conn: asyncpg.Connection, integration_id: uuid.UUID, kind: str, backend_pid: int
) -> uuid.UUID:
    # we hold the run lock: a run still marked running died with its process. One
    # transaction: a status read in between would see the dead run as the last, just finished
    async with conn.transaction():
        await conn.execute(
            "UPDATE sync_runs SET outcome = 'interrupted', finished_at = now()"
            " WHERE integration_id = $1 AND outcome = 'running'",
            integration_id,
        )
        return await conn.fetchval(
            "INSERT INTO sync_runs (integration_id, kind, backend_pid) VALUES ($1, $2, $3)"
            " RETURNING id",
            integration_id,
            kind,
            backend_pid,
        )


async def finish_run(
    conn: asyncpg.Connection,
    run_id: uuid.UUID,
    *,
    outcome: str,
    pulled: int,
    deleted: int,
    pushed: int,
    error: str | None,
) -> None:
    await conn.execute(
        "UPDATE sync_runs SET outcome = $2, records_pulled = $3, records_deleted = $4,"
        " records_pushed = $5, error = $6, finished_at = now() WHERE id = $1",
        run_id,
        outcome,
        pulled,
        deleted,
        pushed,
        error[:2000] if error else None,
    )
    if outcome == "succeeded":
        await conn.execute(
            "UPDATE integration_connectors SET last_sync_at = now()"
            " WHERE id = (SELECT integration_id FROM sync_runs WHERE id = $1)",
            run_id,
        )


async def runs(
    conn: asyncpg.Connection,
    integration_id: uuid.UUID,
    *,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Any]:
    started, run_id = before if before else (None, None)
    return await conn.fetch(
        "SELECT id, kind, outcome, records_pulled, records_deleted, records_pushed, error,"
        " started_at, finished_at FROM sync_runs WHERE integration_id = $1"
        " AND ($2::timestamptz IS NULL OR (started_at, id) < ($2, $3::uuid))"
        " ORDER BY started_at DESC, id DESC LIMIT $4",
        integration_id,
        started,
        run_id,
        limit,
    )


async def scheduled_due(conn: asyncpg.Connection, limit: int) -> list[Any]:
    """Active installs with streams (in the version they run, which is not withdrawn) whose
    interval has passed since their last run began, of tenants not suspended."""
    return await conn.fetch(
        "SELECT ic.id, ic.tenant_id FROM integration_connectors ic"
        " JOIN tenants t ON t.id = ic.tenant_id"
        " JOIN marketplace_connector_versions v"
        " ON v.connector_id = ic.marketplace_connector_id AND v.version = ic.version"
        " WHERE ic.status = 'active' AND ic.sync_interval_seconds > 0"
        " AND t.suspended_at IS NULL AND v.withdrawn_at IS NULL"
        " AND jsonb_array_length(COALESCE(v.manifest -> 'streams', '[]'::jsonb)) > 0"
        " AND NOT EXISTS (SELECT 1 FROM sync_runs r WHERE r.integration_id = ic.id"
        " AND r.started_at > now() - make_interval(secs => ic.sync_interval_seconds))"
        " ORDER BY ic.last_sync_at NULLS FIRST LIMIT $1",
        limit,
    )
