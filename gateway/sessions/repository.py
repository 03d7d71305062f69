from __future__ import annotations

import uuid

import asyncpg

# How long the previous id of a rotated session is still accepted: requests already on their
# way when the id changed are not refused.
ROTATION_GRACE_SECONDS = 10

_COLUMNS = """id, user_id, tenant_id, role, provider, issuer, created_at, last_seen_at,
    idle_expires_at, absolute_expires_at, ended_at, end_reason, user_agent, client_address"""


async def insert(
    conn: asyncpg.Connection,
    *,
    token_hash: bytes,
    user_id: uuid.UUID,
    tenant_id: uuid.UUID | None,
    role: str | None,
    provider: str,
    issuer: str | None,
    idle_seconds: float,
    absolute_seconds: float,
    user_agent: str | None,
    client_address: str | None,
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""
        INSERT INTO sessions (token_hash, user_id, tenant_id, role, provider, issuer,
            idle_expires_at, absolute_expires_at, user_agent, client_address)
        VALUES ($1, $2, $3, $4, $5, $6,
            now() + make_interval(secs => least($7::float8, $8::float8)),
            now() + make_interval(secs => $8::float8),
            $9, $10)
        RETURNING {_COLUMNS}
        """,
        token_hash, user_id, tenant_id, role, provider, issuer, idle_seconds, absolute_seconds,
        user_agent, client_address,
    )  # fmt: skip


# One statement per cache miss: find the live session by its current (or just-rotated) id,
# slide its idle expiry (unless only peeking), and read what the request acts as: the current
# role from the membership (not the one the session was issued for), the tenant's slug and
# suspension, and whether the user is an operator.
_LIVE = f"""(token_hash = $1
           OR (previous_token_hash = $1
               AND rotated_at > now() - make_interval(secs => {ROTATION_GRACE_SECONDS})))
      AND ended_at IS NULL AND idle_expires_at > now() AND absolute_expires_at > now()"""
_FOUND = """id, user_id, tenant_id, role, idle_expires_at, absolute_expires_at,
        token_hash = $1 AS current"""
_ACTS_AS = """
SELECT s.id, s.user_id, s.tenant_id, s.role AS issued_role, m.role AS role, s.current,
       s.idle_expires_at, s.absolute_expires_at, t.slug AS tenant_slug,
       t.suspended_at IS NOT NULL AS suspended, o.user_id IS NOT NULL AS operator
FROM s
LEFT JOIN memberships m ON m.tenant_id = s.tenant_id AND m.user_id = s.user_id
LEFT JOIN tenants t ON t.id = s.tenant_id
LEFT JOIN platform_operators o ON o.user_id = s.user_id
"""
_TOUCH = (
    f"""
WITH s AS (
    UPDATE sessions
    SET last_seen_at = now(),
        idle_expires_at = least(now() + make_interval(secs => $2::float8), absolute_expires_at)
    WHERE {_LIVE}
    RETURNING {_FOUND}
)"""
    + _ACTS_AS
)
_PEEK = f"WITH s AS (SELECT {_FOUND} FROM sessions WHERE {_LIVE})" + _ACTS_AS


async def touch(
    conn: asyncpg.Connection, token_hash: bytes, *, idle_seconds: float
) -> asyncpg.Record | None:
    return await conn.fetchrow(_TOUCH, token_hash, idle_seconds)


async def peek(conn: asyncpg.Connection, token_hash: bytes) -> asyncpg.Record | None:
    """As :func:`touch`, without counting as use (an open WebSocket checked again)."""
    return await conn.fetchrow(_PEEK, token_hash)


async def rotate(
    conn: asyncpg.Connection,
    session_id: uuid.UUID,
    *,
    token_hash: bytes,
    tenant_id: uuid.UUID | None,
    role: str | None,
) -> asyncpg.Record | None:
    """A new id for a live session (keeping the previous one for the grace period), and the
    tenant and role it is issued for."""
    return await conn.fetchrow(
        f"""
        UPDATE sessions
        SET previous_token_hash = token_hash, token_hash = $2, rotated_at = now(),
            tenant_id = $3, role = $4
        WHERE id = $1 AND ended_at IS NULL
        RETURNING {_COLUMNS}
        """,
        session_id, token_hash, tenant_id, role,
    )  # fmt: skip


async def end(
    conn: asyncpg.Connection,
    *,
    reason: str,
    session_id: uuid.UUID | None = None,
    token_hash: bytes | None = None,
    user_id: uuid.UUID | None = None,
    tenant_id: uuid.UUID | None = None,
) -> list[asyncpg.Record]:
    """End live sessions matching every given filter (at least one): by id, by cookie, a
    user's (optionally only those in one tenant), or a whole tenant's."""
    assert any(v is not None for v in (session_id, token_hash, user_id, tenant_id))
    return await conn.fetch(
        f"""
        UPDATE sessions SET ended_at = now(), end_reason = $1
        WHERE ended_at IS NULL
          AND ($2::uuid IS NULL OR id = $2)
          AND ($3::bytea IS NULL OR token_hash = $3
               OR (previous_token_hash = $3
                   AND rotated_at > now() - make_interval(secs => {ROTATION_GRACE_SECONDS})))
          AND ($4::uuid IS NULL OR user_id = $4)
          AND ($5::uuid IS NULL OR tenant_id = $5)
        RETURNING {_COLUMNS}
        """,
        reason, session_id, token_hash, user_id, tenant_id,
    )  # fmt: skip


async def list_live(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM sessions
        WHERE user_id = $1 AND ended_at IS NULL
          AND idle_expires_at > now() AND absolute_expires_at > now()
        ORDER BY created_at DESC
        LIMIT 200
        """,
        user_id,
    )


async def get(conn: asyncpg.Connection, session_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_COLUMNS} FROM sessions WHERE id = $1", session_id)


async def purge(conn: asyncpg.Connection, *, keep_days: float) -> int:
    """Delete sessions ended or expired more than ``keep_days`` ago (listing and audit need
    recent ones), and sign-ins that were never completed."""
    done = await conn.execute(
        """
        DELETE FROM sessions
        WHERE least(coalesce(ended_at, 'infinity'), idle_expires_at, absolute_expires_at)
              < now() - make_interval(days => $1::int)
        """,
        int(keep_days),
    )
    await conn.execute("DELETE FROM login_flows WHERE expires_at < now() - interval '1 hour'")
    return int(done.split()[-1])


async def last_tenant(conn: asyncpg.Connection, user_id: uuid.UUID) -> uuid.UUID | None:
    """The tenant of the user's most recent session that had one."""
    return await conn.fetchval(
        """SELECT tenant_id FROM sessions WHERE user_id = $1 AND tenant_id IS NOT NULL
           ORDER BY created_at DESC LIMIT 1""",
        user_id,
    )
