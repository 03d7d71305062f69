"""Every line of SQL of the delivery queue: claiming due deliveries (FOR UPDATE SKIP LOCKED,
with a lease), recording attempts, finishing or rescheduling, and disabling endpoints that
have failed for too long. Each function runs in the caller's transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from connector_service.metrics import retention

# Where a claim's per-target room is counted for email deliveries (they all go to one SMTP host).
MAIL_TARGET = uuid.UUID(int=0)

# Claims due rows no other worker holds (SKIP LOCKED) and moves next_at past the attempt's
# timeout: the lease, whose token ($7, lease_id) recording and releasing must present. A worker
# that dies mid-attempt leaves the row due again after it. A claim uses up no attempt: the
# attempt is counted when it is recorded; ``attempts`` comes back as the number of the one
# about to be made.
# At most $1 rows in all and, per target (endpoint; all email as one), the room the worker
# has left for it ($5/$6; $4 for targets it sends nothing to now), chosen among the $3 rows due
# first: every row claimed is sent at once, so none waits past its lease behind a slow endpoint.
# Targets take turns (each one's first due row, then each one's second, ...): a batch spreads
# over every endpoint with rows due, and none is left to drain alone at the end. One
# statement: the window ranks unlocked candidates, the lock is taken on the chosen ones.
_CLAIM = """
WITH candidate AS (
    SELECT id, coalesce(endpoint_id, '00000000-0000-0000-0000-000000000000'::uuid) AS target,
           next_at
    FROM outbound_deliveries
    WHERE state = 'pending' AND next_at <= now()
    ORDER BY next_at LIMIT $3
), ranked AS (
    SELECT c.id, c.next_at, coalesce(b.room, $4) AS room,
           row_number() OVER (PARTITION BY c.target ORDER BY c.next_at) AS n
    FROM candidate c LEFT JOIN unnest($5::uuid[], $6::int[]) AS b(target, room)
        ON b.target = c.target
), due AS (
    SELECT d.id FROM outbound_deliveries d JOIN ranked r ON r.id = d.id
    WHERE r.n <= r.room AND d.state = 'pending' AND d.next_at <= now()
    ORDER BY r.n, r.next_at LIMIT $1
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE outbound_deliveries d
SET next_at = now() + $2 * interval '1 second', lease_id = $7
FROM due, outbound_events e
WHERE d.id = due.id AND e.id = d.event_id
RETURNING d.id, d.lease_id, d.event_id, d.tenant_id, d.endpoint_id, d.user_id,
          d.attempts + 1 AS attempts,
          e.type, e.data, e.created_at, e.integration_id
"""
# candidates looked at per row asked for: room for many targets' rows behind a busy one's
CANDIDATES_PER_ROW = 16


async def plan_each_time(conn: asyncpg.Connection) -> None:
    """For the rest of the caller's transaction, plan every statement with its values and the
    tables' sizes now. An idle worker runs the claim on an empty queue again and again, and
    PostgreSQL then caches a generic plan that runs a burst as nested loops over the whole
    table (measured: the first claim of 200 after 10,000 deliveries were published took 7.9 s
    on that plan, 16 ms planned afresh; a plan costs well under a millisecond)."""
    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")


async def claim(
    conn: asyncpg.Connection,
    *,
    limit: int,
    lease_seconds: float,
    per_target: int | None = None,
    busy: dict[uuid.UUID, int] | None = None,
) -> list[Any]:
    """Lease at most ``limit`` due deliveries, at most ``per_target`` per endpoint (all email
    counted as one target, :data:`MAIL_TARGET`) less what ``busy`` says is in flight there.
    Every row carries the claim's ``lease_id``, which :func:`record` and :func:`release` need."""
    per = limit if per_target is None else per_target
    busy = busy or {}
    return await conn.fetch(
        _CLAIM, limit, lease_seconds, limit * CANDIDATES_PER_ROW, per, list(busy),
        [max(per - n, 0) for n in busy.values()], uuid.uuid4(),
    )  # fmt: skip


async def endpoint_urls(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    rows = await conn.fetch("SELECT id, url FROM outbound_endpoints WHERE id = ANY ($1)", ids)
    return {r["id"]: r["url"] for r in rows}


async def recipients(conn: asyncpg.Connection, deliveries: list[Any]) -> dict[uuid.UUID, Any]:
    """Per email delivery: the admin's verified address, or none when the user is no longer
    an admin of the tenant, has no verified address, or opted out (read from the gateway's
    users, memberships and notification_preferences)."""
    rows = await conn.fetch(
        "SELECT x.id, u.email FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) AS x(id, u, t)"
        " JOIN users u ON u.id = x.u AND u.email IS NOT NULL AND u.email_verified"
        " JOIN memberships m ON m.user_id = x.u AND m.tenant_id = x.t AND m.role = 'admin'"
        " LEFT JOIN notification_preferences p ON p.user_id = x.u"
        " WHERE coalesce(p.email_enabled, true)",
        [d["id"] for d in deliveries], [d["user_id"] for d in deliveries],
        [d["tenant_id"] for d in deliveries],
    )  # fmt: skip
    return {r["id"]: r["email"] for r in rows}


async def tenant_names(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    rows = await conn.fetch("SELECT id, name FROM tenants WHERE id = ANY ($1)", ids)
    return {r["id"]: r["name"] for r in rows}


# The attempts of the rows whose lease the results still hold: the row moves on (its attempt
# counted, its lease ended; a row cancelled meanwhile keeps its state) and the attempt is
# logged. A result whose lease is gone (another worker has claimed the row since) changes
# nothing: that worker's attempt is the one that counts.
_RECORD = """
WITH held AS (
    UPDATE outbound_deliveries d SET attempts = d.attempts + 1, lease_id = NULL,
        state = CASE WHEN d.state = 'pending' THEN x.state ELSE d.state END,
        next_at = CASE WHEN d.state = 'pending' THEN coalesce(x.next_at, d.next_at)
                       ELSE d.next_at END,
        finished_at = CASE WHEN d.state <> 'pending' THEN d.finished_at
                           WHEN x.state = 'pending' THEN NULL ELSE now() END
    FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[])
        AS x(id, lease_id, state, next_at)
    WHERE d.id = x.id AND d.lease_id = x.lease_id
    RETURNING d.id
)
INSERT INTO outbound_attempts (delivery_id, ok, status, duration_ms, response, error)
SELECT a.id, a.ok, a.status, a.duration_ms, a.response, a.error
FROM unnest($1::uuid[], $5::bool[], $6::int[], $7::real[], $8::text[], $9::text[])
    AS a(id, ok, status, duration_ms, response, error)
JOIN held ON held.id = a.id
RETURNING delivery_id
"""
# what the attempts table keeps of an answer and of an error class
RESPONSE_BYTES = 1024
ERROR_CHARS = 200


def storable(text: str | None, *, max_bytes: int = RESPONSE_BYTES) -> str | None:
    """``text`` as PostgreSQL stores it: no NUL (refused in text; U+FFFD instead), no lone
    surrogate (not UTF-8; "?"), and at most ``max_bytes`` of UTF-8, cut at a character."""
    if text is None:
        return None
    raw = text.replace("\x00", "\ufffd").encode("utf-8", "replace")[:max_bytes]
    return raw.decode("utf-8", "ignore")


async def record(conn: asyncpg.Connection, results: list[dict[str, Any]]) -> set[uuid.UUID]:
    """Each result: delivery id, its claim's lease_id, ok, status, duration_ms, response,
    error, and what comes next: ``state`` (delivered, failed, skipped, or pending with
    ``next_at``). Returns the ids recorded: those whose lease the result still held.
    Answers and errors are stored as :func:`storable` makes them."""
    if not results:
        return set()
    rows = await conn.fetch(
        _RECORD,
        [r["id"] for r in results], [r["lease_id"] for r in results],
        [r["state"] for r in results], [r.get("next_at") for r in results],
        [r["ok"] for r in results], [r["status"] for r in results],
        [r["duration_ms"] for r in results], [storable(r["response"]) for r in results],
        [storable(r["error"], max_bytes=ERROR_CHARS) for r in results],
    )  # fmt: skip
    return {r["delivery_id"] for r in rows}


async def release(conn: asyncpg.Connection, leases: list[tuple[uuid.UUID, uuid.UUID]]) -> int:
    """Claimed rows that were not sent (no room before their deadline, or shutdown): due again
    now, their lease ended, no attempt used. Each (id, lease_id); a lease gone is left alone."""
    if not leases:
        return 0
    done = await conn.execute(
        "UPDATE outbound_deliveries d SET next_at = now(), lease_id = NULL"
        " FROM unnest($1::uuid[], $2::uuid[]) AS x(id, lease_id)"
        " WHERE d.id = x.id AND d.lease_id = x.lease_id AND d.state = 'pending'",
        [i for i, _ in leases], [lease for _, lease in leases],
    )  # fmt: skip
    return int(done.split()[-1])


async def endpoint_outcomes(
    conn: asyncpg.Connection,
    *,
    succeeded: list[uuid.UUID],
    failed: list[uuid.UUID],
    disable_after_seconds: float,
) -> list[Any]:
    """A success ends an endpoint's failure streak; a failure starts one if none runs. Returns
    the endpoints just disabled for failing longer than ``disable_after_seconds``, locked."""
    if succeeded:
        await conn.execute(
            "UPDATE outbound_endpoints SET failing_since = NULL"
            " WHERE id = ANY ($1::uuid[]) AND failing_since IS NOT NULL",
            succeeded,
        )
    if not failed:
        return []
    await conn.execute(
        "UPDATE outbound_endpoints SET failing_since = now()"
        " WHERE id = ANY ($1::uuid[]) AND NOT (id = ANY ($2::uuid[])) AND enabled"
        " AND failing_since IS NULL",
        failed, succeeded,
    )  # fmt: skip
    return await conn.fetch(
        "UPDATE outbound_endpoints SET enabled = false, updated_at = now(),"
        " disabled_reason = 'failing since ' || to_char(failing_since AT TIME ZONE 'UTC',"
        "   'YYYY-MM-DD HH24:MI:SS') || ' UTC'"
        " WHERE id = ANY ($1::uuid[]) AND NOT (id = ANY ($2::uuid[])) AND enabled"
        " AND failing_since <= now() - $3 * interval '1 second'"
        " RETURNING id, tenant_id, url, description, failing_since",
        failed, succeeded, disable_after_seconds,
    )  # fmt: skip


# Events past retention with nothing pending (their deliveries and attempts go with them), a
# batch at a time, locked SKIP LOCKED so two processes sweeping never wait on each other.
_SWEEP = """
DELETE FROM outbound_events WHERE id = ANY(ARRAY(
    SELECT e.id FROM outbound_events e WHERE e.created_at < $1 AND NOT EXISTS (
        SELECT 1 FROM outbound_deliveries d WHERE d.event_id = e.id AND d.state = 'pending')
    LIMIT $2 FOR UPDATE SKIP LOCKED))
"""
SWEEP_BATCH = 500


async def sweep(conn: asyncpg.Connection, *, older_than: datetime, batch: int = SWEEP_BATCH) -> int:
    """Delete expired events in batches of ``batch``, each statement its own transaction
    (``conn`` must not be in one), so no delete holds its locks for long. Returns how many."""
    return await retention.delete_batches(conn, _SWEEP, older_than, batch=batch)
