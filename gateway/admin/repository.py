"""SQL of the platform operators' work: tenants across the platform, and the operators."""

from __future__ import annotations

import uuid

import asyncpg

# Counted per row of a page (at most 200): memberships' primary key and the installs'
# (tenant_id, status) index answer each count from the index alone.
_TENANT = """
SELECT t.id, t.slug, t.name, t.industry, t.size, t.created_at, t.updated_at, t.suspended_at,
       t.suspended_reason,
       (SELECT count(*) FROM memberships m WHERE m.tenant_id = t.id) AS members,
       (SELECT count(*) FROM integration_connectors ic WHERE ic.tenant_id = t.id) AS installs
FROM tenants t"""


async def list_tenants(
    conn: asyncpg.Connection, *, suspended: bool | None, after_slug: str | None, limit: int
) -> list[asyncpg.Record]:
    """A page of tenants in slug order, after ``after_slug``; ``suspended`` filters by status."""
    return await conn.fetch(
        f"""{_TENANT}
            WHERE ($1::boolean IS NULL OR (t.suspended_at IS NOT NULL) = $1)
              AND ($2::text IS NULL OR t.slug > $2)
            ORDER BY t.slug LIMIT $3""",
        suspended, after_slug, limit,
    )  # fmt: skip


async def get_tenant(conn: asyncpg.Connection, slug: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"{_TENANT} WHERE t.slug = $1", slug)


async def lock_tenant(conn: asyncpg.Connection, slug: str) -> asyncpg.Record | None:
    """The tenant's id and suspension, its row locked until the transaction ends."""
    return await conn.fetchrow(
        "SELECT id, suspended_at, suspended_reason FROM tenants WHERE slug = $1 FOR UPDATE", slug
    )


async def set_suspended(conn: asyncpg.Connection, tenant_id: uuid.UUID, *, reason: str) -> None:
    await conn.execute(
        "UPDATE tenants SET suspended_at = now(), suspended_reason = $2 WHERE id = $1",
        tenant_id, reason,
    )  # fmt: skip


async def clear_suspended(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE tenants SET suspended_at = NULL, suspended_reason = NULL WHERE id = $1", tenant_id
    )


# ------------------------------------------------------------------------------ operators


async def users_with_verified_email(conn: asyncpg.Connection, email: str) -> list[asyncpg.Record]:
    """Every identity of the users whose verified email is ``email`` (case-insensitively)."""
    return await conn.fetch(
        """SELECT u.id AS user_id, u.email, i.issuer, i.subject, i.provider
           FROM users u JOIN user_identities i ON i.user_id = u.id
           WHERE u.email_verified AND lower(u.email) = lower($1)
           ORDER BY u.created_at, u.id, i.created_at""",
        email,
    )


async def identity_user(
    conn: asyncpg.Connection, *, issuer: str, subject: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT u.id AS user_id, u.email, i.issuer, i.subject, i.provider
           FROM user_identities i JOIN users u ON u.id = i.user_id
           WHERE i.issuer = $1 AND i.subject = $2""",
        issuer, subject,
    )  # fmt: skip


async def operator_added_by(conn: asyncpg.Connection, user_id: uuid.UUID) -> str | None:
    """Who made the user an operator (``config:<provider>``, ``system:cli``), or None."""
    return await conn.fetchval(
        "SELECT added_by FROM platform_operators WHERE user_id = $1", user_id
    )


async def remove_operator(conn: asyncpg.Connection, user_id: uuid.UUID) -> str | None:
    """Who had made the user an operator, or None when they were not one."""
    return await conn.fetchval(
        "DELETE FROM platform_operators WHERE user_id = $1 RETURNING added_by", user_id
    )


async def operators(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every operator with their identities (issuer and subject), oldest operator first."""
    return await conn.fetch(
        """SELECT o.user_id, u.email, o.added_by, o.created_at,
                  coalesce(jsonb_agg(jsonb_build_object('issuer', i.issuer, 'subject', i.subject)
                                     ORDER BY i.created_at) FILTER (WHERE i.issuer IS NOT NULL),
                           '[]'::jsonb) AS identities
           FROM platform_operators o JOIN users u ON u.id = o.user_id
           LEFT JOIN user_identities i ON i.user_id = o.user_id
           GROUP BY o.user_id, u.email, o.added_by, o.created_at
           ORDER BY o.created_at, o.user_id"""
    )
