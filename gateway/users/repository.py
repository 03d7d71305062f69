from __future__ import annotations

import uuid

import asyncpg

_USER = "u.id, u.email, u.email_verified, u.display_name, u.created_at, u.last_sign_in_at"


async def lock_identity(conn: asyncpg.Connection, *, issuer: str, subject: str) -> None:
    """Serialise sign-ins of one identity until the transaction ends (two first sign-ins at
    once would otherwise each create a user)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(10) || $2, 7))", issuer, subject
    )


async def identity_user(
    conn: asyncpg.Connection, *, issuer: str, subject: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""SELECT {_USER} FROM user_identities i JOIN users u ON u.id = i.user_id
            WHERE i.issuer = $1 AND i.subject = $2 FOR UPDATE OF u""",
        issuer,
        subject,
    )


async def insert_user(
    conn: asyncpg.Connection, *, email: str | None, email_verified: bool, name: str | None
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""INSERT INTO users AS u (email, email_verified, display_name, last_sign_in_at)
            VALUES ($1, $2, $3, now()) RETURNING {_USER}""",
        email, email_verified, name,
    )  # fmt: skip


async def update_user(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    email: str | None,
    email_verified: bool,
    name: str | None,
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""UPDATE users AS u SET email = $2, email_verified = $3,
                display_name = coalesce($4, display_name), last_sign_in_at = now()
            WHERE id = $1 RETURNING {_USER}""",
        user_id, email, email_verified, name,
    )  # fmt: skip


async def upsert_identity(
    conn: asyncpg.Connection,
    *,
    issuer: str,
    subject: str,
    user_id: uuid.UUID,
    provider: str,
    email: str | None,
    email_verified: bool,
) -> None:
    await conn.execute(
        """INSERT INTO user_identities (issuer, subject, user_id, provider, email,
               email_verified, last_sign_in_at)
           VALUES ($1, $2, $3, $4, $5, $6, now())
           ON CONFLICT (issuer, subject) DO UPDATE
           SET email = excluded.email, email_verified = excluded.email_verified,
               last_sign_in_at = now()""",
        issuer, subject, user_id, provider, email, email_verified,
    )  # fmt: skip


async def get(conn: asyncpg.Connection, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_USER} FROM users u WHERE u.id = $1", user_id)


async def identities(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT issuer, subject, provider, email, email_verified, created_at, last_sign_in_at
           FROM user_identities WHERE user_id = $1 ORDER BY created_at""",
        user_id,
    )


async def memberships(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT t.id AS tenant_id, t.slug, t.name, m.role, t.suspended_at IS NOT NULL
               AS suspended
           FROM memberships m JOIN tenants t ON t.id = m.tenant_id
           WHERE m.user_id = $1 ORDER BY t.slug""",
        user_id,
    )


async def membership(
    conn: asyncpg.Connection, *, user_id: uuid.UUID, tenant_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT t.id AS tenant_id, t.slug, t.name, m.role, t.suspended_at IS NOT NULL
               AS suspended
           FROM memberships m JOIN tenants t ON t.id = m.tenant_id
           WHERE m.user_id = $1 AND m.tenant_id = $2""",
        user_id, tenant_id,
    )  # fmt: skip


async def add_membership(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str,
    created_by: str,
) -> asyncpg.Record | None:
    """A new membership, or None when the user is a member already (nothing changes)."""
    return await conn.fetchrow(
        """INSERT INTO memberships (tenant_id, user_id, role, created_by)
           VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, user_id) DO NOTHING
           RETURNING tenant_id, user_id, role""",
        tenant_id, user_id, role, created_by,
    )  # fmt: skip


async def is_operator(conn: asyncpg.Connection, user_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM platform_operators WHERE user_id = $1", user_id))


async def add_operator(conn: asyncpg.Connection, user_id: uuid.UUID, *, added_by: str) -> bool:
    """True when the user was not an operator before."""
    done = await conn.execute(
        """INSERT INTO platform_operators (user_id, added_by) VALUES ($1, $2)
           ON CONFLICT (user_id) DO NOTHING""",
        user_id, added_by,
    )  # fmt: skip
    return done.endswith(" 1")
