from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

# the token's hash is never read back out
_COLUMNS = """i.id, i.tenant_id, i.email, i.role, i.invited_by, i.created_at, i.expires_at,
    i.accepted_at, i.accepted_by, i.revoked_at,
    CASE WHEN i.accepted_at IS NOT NULL THEN 'accepted'
         WHEN i.revoked_at IS NOT NULL THEN 'revoked'
         WHEN i.expires_at <= now() THEN 'expired'
         ELSE 'pending' END AS status"""
_PENDING = "i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now()"


async def insert(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    email: str,
    role: str,
    token_hash: bytes,
    invited_by: str,
    valid_seconds: float,
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""INSERT INTO invitations AS i (tenant_id, email, role, token_hash, invited_by,
                expires_at)
            VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6::float8))
            RETURNING {_COLUMNS}""",
        tenant_id, email, role, token_hash, invited_by, valid_seconds,
    )  # fmt: skip


async def revoke_pending_for(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, email: str
) -> list[asyncpg.Record]:
    """Revoke the tenant's pending invitations of ``email``."""
    return await conn.fetch(
        f"""UPDATE invitations AS i SET revoked_at = now()
            WHERE i.tenant_id = $1 AND lower(i.email) = lower($2) AND {_PENDING}
            RETURNING i.id""",
        tenant_id, email,
    )  # fmt: skip


async def member_with_verified_email(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, email: str
) -> bool:
    found = await conn.fetchval(
        """SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id
           WHERE m.tenant_id = $1 AND u.email_verified AND lower(u.email) = lower($2)
           LIMIT 1""",
        tenant_id, email,
    )  # fmt: skip
    return found is not None


async def list_page(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    *,
    status: str | None,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """The tenant's invitations, newest first, before the (created_at, id) ``before``."""
    created, invitation_id = before or (None, None)
    return await conn.fetch(
        f"""SELECT * FROM (SELECT {_COLUMNS} FROM invitations i WHERE i.tenant_id = $1
                  AND ($3::timestamptz IS NULL OR (i.created_at, i.id) < ($3, $4::uuid))) s
            WHERE ($2::text IS NULL OR s.status = $2)
            ORDER BY s.created_at DESC, s.id DESC LIMIT $5""",
        tenant_id, status, created, invitation_id, limit,
    )  # fmt: skip


async def get(
    conn: asyncpg.Connection, invitation_id: uuid.UUID, *, tenant_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM invitations i WHERE i.id = $1 AND i.tenant_id = $2",
        invitation_id, tenant_id,
    )  # fmt: skip


async def revoke(
    conn: asyncpg.Connection, invitation_id: uuid.UUID, *, tenant_id: uuid.UUID
) -> asyncpg.Record | None:
    """Revoke an invitation not yet accepted nor revoked (expired ones too)."""
    return await conn.fetchrow(
        f"""UPDATE invitations AS i SET revoked_at = now()
            WHERE i.id = $1 AND i.tenant_id = $2 AND i.accepted_at IS NULL
              AND i.revoked_at IS NULL
            RETURNING {_COLUMNS}""",
        invitation_id, tenant_id,
    )  # fmt: skip


async def pending_by_hash(conn: asyncpg.Connection, token_hash: bytes) -> asyncpg.Record | None:
    """A pending invitation and its tenant's slug and name."""
    return await conn.fetchrow(
        f"""SELECT {_COLUMNS}, t.slug AS tenant_slug, t.name AS tenant_name
            FROM invitations i JOIN tenants t ON t.id = i.tenant_id
            WHERE i.token_hash = $1 AND {_PENDING}""",
        token_hash,
    )


async def consume(
    conn: asyncpg.Connection, invitation_id: uuid.UUID, *, user_id: uuid.UUID
) -> bool:
    """Mark a pending invitation accepted: True for the one caller that does it."""
    done = await conn.execute(
        f"""UPDATE invitations AS i SET accepted_at = now(), accepted_by = $2
            WHERE i.id = $1 AND {_PENDING}""",
        invitation_id, user_id,
    )  # fmt: skip
    return done == "UPDATE 1"


async def lock_pending_made_by(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, creators: list[str]
) -> list[asyncpg.Record]:
    """Pending invitations of the tenant that any of ``creators`` made, locked."""
    return await conn.fetch(
        f"""SELECT i.id, i.role FROM invitations i
            WHERE i.tenant_id = $1 AND i.invited_by = ANY($2::text[]) AND {_PENDING}
            ORDER BY i.id FOR UPDATE""",
        tenant_id, creators,
    )  # fmt: skip
