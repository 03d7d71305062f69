"""Every line of SQL of the delivery queue: claiming due deliveries (FOR UPDATE SKIP LOCKED,
with a lease), recording attempts, finishing or rescheduling, and disabling endpoints that
have failed for too long. Each function runs in the caller's transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

# Where a claim's per-target room is counted for email deliveries (they all go to one SMTP host).
MAIL_TARGET = uuid.UUID(int=0)

# Claims due rows no other worker holds (SKIP LOCKED) and moves next_at past the attempt's
# timeout: the lease. A worker that dies mid-attempt leaves the row due again after it.
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
SET attempts = d.attempts + 1, next_at = now() + $2 * interval '1 second'
FROM due, outbound_events e
WHERE d.id = due.id AND e.id = d.event_id
RETURNING d.id, d.event_id, d.tenant_id, d.endpoint_id, d.user_id, d.attempts,
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
    counted as one target, :data:`MAIL_TARGET`) less what ``busy`` says is in flight there."""
    per = limit if per_target is None else per_target
    busy = busy or {}
    return await conn.fetch(
        _CLAIM, limit, lease_seconds, limit * CANDIDATES_PER_ROW, per, list(busy),
        [max(per - n, 0) for n in busy.values()],
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


async def record(conn: asyncpg.Connection, results: list[dict[str, Any]]) -> None:
    """Each result: delivery id, ok, status, duration_ms, response, error, and what comes
    next: ``state`` (delivered, failed, skipped, or pending with ``next_at``)."""
    if not results:
        return
    await conn.execute(
        "INSERT INTO outbound_attempts (delivery_id, ok, status, duration_ms, response, error)"
        " SELECT * FROM unnest($1::uuid[], $2::bool[], $3::int[], $4::real[], $5::text[],"
        " $6::text[])",
        [r["id"] for r in results], [r["ok"] for r in results],
        [r["status"] for r in results], [r["duration_ms"] for r in results],
        [r["response"] for r in results], [r["error"] for r in results],
    )  # fmt: skip
    await conn.execute(
        "UPDATE outbound_deliveries d SET state = x.state,"
        " next_at = coalesce(x.next_at, d.next_at),"
        " finished_at = CASE WHEN x.state = 'pending' THEN NULL ELSE now() END"
        " FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS x(id, state, next_at)"
        " WHERE d.id = x.id AND d.state = 'pending'",
        [r["id"] for r in results], [r["state"] for r in results],
        [r.get("next_at") for r in results],
    )  # fmt: skip


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


async def sweep(conn: asyncpg.Connection, *, older_than: datetime) -> int:
    """Events past retention with nothing pending, their deliveries and attempts with them."""
    done = await conn.execute(
        "DELETE FROM outbound_events e WHERE e.created_at < $1 AND NOT EXISTS ("
        " SELECT 1 FROM outbound_deliveries d WHERE d.event_id = e.id AND d.state = 'pending')",
        older_than,
    )
    return int(done.split()[-1])
