from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

_MEMBER = """m.user_id, u.email, u.email_verified, u.display_name AS name, m.role,
    m.created_at AS joined_at, m.created_by AS added_by, u.last_sign_in_at"""


async def list_page(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Members in the order they joined, after the (joined_at, user_id) ``after``."""
    joined, user_id = after or (None, None)
    return await conn.fetch(
        f"""SELECT {_MEMBER} FROM memberships m JOIN users u ON u.id = m.user_id
            WHERE m.tenant_id = $1
              AND ($2::timestamptz IS NULL OR (m.created_at, m.user_id) > ($2, $3::uuid))
            ORDER BY m.created_at, m.user_id LIMIT $4""",
        tenant_id, joined, user_id, limit,
    )  # fmt: skip


async def get(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, user_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""SELECT {_MEMBER} FROM memberships m JOIN users u ON u.id = m.user_id
            WHERE m.tenant_id = $1 AND m.user_id = $2""",
        tenant_id, user_id,
    )  # fmt: skip


async def lock_admins_and(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, user_id: uuid.UUID
) -> list[asyncpg.Record]:
    """Lock the tenant's admin memberships and the user's, in one order (by user id) so that
    two of these never wait for each other. A membership changed by a transaction this waited
    for is read as that transaction left it: an admin just demoted or removed is not counted."""
    return await conn.fetch(
        """SELECT user_id, role FROM memberships
           WHERE tenant_id = $1 AND (role = 'admin' OR user_id = $2)
           ORDER BY user_id FOR UPDATE""",
        tenant_id, user_id,
    )  # fmt: skip


async def set_role(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, user_id: uuid.UUID, role: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""WITH m AS (
                UPDATE memberships SET role = $3, updated_at = now()
                WHERE tenant_id = $1 AND user_id = $2 RETURNING *)
            SELECT {_MEMBER} FROM m JOIN users u ON u.id = m.user_id""",
        tenant_id, user_id, role,
    )  # fmt: skip


async def delete(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, user_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""WITH m AS (
                DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2 RETURNING *)
            SELECT {_MEMBER} FROM m JOIN users u ON u.id = m.user_id""",
        tenant_id, user_id,
    )  # fmt: skip
