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


# ------------------------------------------------------------------------------ finding


async def find_identity(conn: asyncpg.Connection, *, issuer: str, subject: str) -> uuid.UUID | None:
    """The user of this identity, read without a lock."""
    return await conn.fetchval(
        "SELECT user_id FROM user_identities WHERE issuer = $1 AND subject = $2", issuer, subject
    )


async def with_verified_email(conn: asyncpg.Connection, email: str) -> list[uuid.UUID]:
    """The users one of whose identities (or whose last sign-in) asserted ``email``, verified:
    oldest first. An unverified email finds nobody."""
    rows = await conn.fetch(
        """SELECT u.id FROM users u
           WHERE (u.email_verified AND lower(u.email) = lower($1))
              OR EXISTS (SELECT 1 FROM user_identities i WHERE i.user_id = u.id
                         AND i.email_verified AND lower(i.email) = lower($1))
           ORDER BY u.created_at, u.id""",
        email,
    )
    return [r["id"] for r in rows]


# ------------------------------------------------------------------------------ linking


async def lock_users(conn: asyncpg.Connection, user_ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    """The users that exist among ``user_ids``, locked in id order (two links never wait for
    each other in opposite orders)."""
    return await conn.fetch(
        f"SELECT {_USER} FROM users u WHERE u.id = ANY($1::uuid[]) ORDER BY u.id FOR UPDATE",
        user_ids,
    )


async def identity_keys(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT issuer, subject FROM user_identities WHERE user_id = $1 ORDER BY issuer, subject",
        user_id,
    )


async def lock_tenant_members(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, user_ids: list[uuid.UUID]
) -> list[asyncpg.Record]:
    """The tenant's admin memberships and those of ``user_ids``, locked by user id (the order
    of :func:`gateway.members.repository.lock_admins_and`)."""
    return await conn.fetch(
        """SELECT user_id, role FROM memberships
           WHERE tenant_id = $1 AND (role = 'admin' OR user_id = ANY($2::uuid[]))
           ORDER BY user_id FOR UPDATE""",
        tenant_id, user_ids,
    )  # fmt: skip


async def move_membership(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, from_user: uuid.UUID, to_user: uuid.UUID
) -> None:
    """The membership changes hands with its role, join time and who added it."""
    await conn.execute(
        """UPDATE memberships SET user_id = $3, updated_at = now()
           WHERE tenant_id = $1 AND user_id = $2""",
        tenant_id, from_user, to_user,
    )  # fmt: skip


async def delete_membership(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    await conn.execute(
        "DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2", tenant_id, user_id
    )


# Where a user is named as the one who did something: ``user:<id>`` strings, and invitations'
# accepted_by. The audit trail is not among them: it is append-only and hash-chained, and the
# ``user.linked`` entry says which id became which.
_REATTRIBUTE = {
    "api_keys": "UPDATE api_keys SET created_by = $2 WHERE created_by = $1",
    "memberships": "UPDATE memberships SET created_by = $2 WHERE created_by = $1",
    "invitations": "UPDATE invitations SET invited_by = $2 WHERE invited_by = $1",
    "tenant_domains": "UPDATE tenant_domains SET created_by = $2 WHERE created_by = $1",
    "platform_operators": "UPDATE platform_operators SET added_by = $2 WHERE added_by = $1",
}


async def reattribute(
    conn: asyncpg.Connection, *, from_user: uuid.UUID, to_user: uuid.UUID
) -> dict[str, int]:
    """Name ``to_user`` wherever ``from_user`` is named as the actor; rows changed per table."""
    old, new = f"user:{from_user}", f"user:{to_user}"
    changed = {}
    for table, sql in _REATTRIBUTE.items():
        changed[table] = int((await conn.execute(sql, old, new)).rsplit(" ", 1)[1])
    done = await conn.execute(
        "UPDATE invitations SET accepted_by = $2 WHERE accepted_by = $1", from_user, to_user
    )
    changed["invitations_accepted"] = int(done.rsplit(" ", 1)[1])
    return changed


async def move_sessions(
    conn: asyncpg.Connection, *, from_user: uuid.UUID, to_user: uuid.UUID
) -> None:
    """Ended sessions are kept (until purged) as the person's history."""
    await conn.execute(
        "UPDATE sessions SET user_id = $2 WHERE user_id = $1 AND ended_at IS NOT NULL",
        from_user, to_user,
    )  # fmt: skip


async def move_identities(
    conn: asyncpg.Connection, *, from_user: uuid.UUID, to_user: uuid.UUID
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """UPDATE user_identities SET user_id = $2 WHERE user_id = $1
           RETURNING issuer, subject, provider""",
        from_user, to_user,
    )  # fmt: skip


async def delete_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM users WHERE id = $1", user_id)
