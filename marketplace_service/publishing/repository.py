"""The SQL of publishing: one catalog entry, locked, inserted or moved to a new version."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg


async def lock_by_slug(conn: asyncpg.Connection, slug: str) -> asyncpg.Record | None:
    """The entry, locked until the transaction ends (concurrent publishes of one slug queue)."""
    return await conn.fetchrow(
        "SELECT id, slug, version, published_by_tenant FROM marketplace_connectors"
        " WHERE slug = $1 FOR UPDATE",
        slug,
    )


async def name_holder(conn: asyncpg.Connection, *, name: str, slug: str) -> str | None:
    """The slug of another entry already using ``name`` or ``slug`` as its name or service
    identifier (both unique), if any."""
    return await conn.fetchval(
        "SELECT slug FROM marketplace_connectors"
        " WHERE slug <> $2 AND (name = $1 OR service_identifier = $2) LIMIT 1",
        name,
        slug,
    )


async def insert(conn: asyncpg.Connection, entry: dict[str, Any]) -> uuid.UUID | None:
    """A new entry; None when another publish of the same slug got there first."""
    return await conn.fetchval(
        """
        INSERT INTO marketplace_connectors (
            slug, name, description, service_identifier, version, logo_url, category, vendor,
            auth_scheme, default_auth_config, available_scopes, setup_guide_url, manifest,
            endpoint_url, allow_multiple, setup_steps, published_by_tenant, published_at)
        VALUES ($1, $2, $3, $1, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, TRUE,
                coalesce($14, '[]'::jsonb), $15, now())
        ON CONFLICT (slug) DO NOTHING RETURNING id
        """,
        entry["slug"], entry["name"], entry["description"], entry["version"], entry["logo_url"],
        entry["category"], entry["vendor"], entry["auth_scheme"], entry["default_auth_config"],
        entry["available_scopes"], entry["setup_guide_url"], entry["manifest"],
        entry["endpoint_url"], entry["setup_steps"], entry["published_by_tenant"],
    )  # fmt: skip


async def update(conn: asyncpg.Connection, entry_id: uuid.UUID, entry: dict[str, Any]) -> None:
    """The entry moved to a new version; what the request leaves out (None) is kept."""
    await conn.execute(
        """
        UPDATE marketplace_connectors SET
            name = $2, description = $3, version = $4, logo_url = coalesce($5, logo_url),
            category = coalesce($6, category), vendor = coalesce($7, vendor), auth_scheme = $8,
            default_auth_config = $9, available_scopes = $10,
            setup_guide_url = coalesce($11, setup_guide_url), manifest = $12, endpoint_url = $13,
            setup_steps = coalesce($14, setup_steps), published_at = now()
        WHERE id = $1
        """,
        entry_id, entry["name"], entry["description"], entry["version"], entry["logo_url"],
        entry["category"], entry["vendor"], entry["auth_scheme"], entry["default_auth_config"],
        entry["available_scopes"], entry["setup_guide_url"], entry["manifest"],
        entry["endpoint_url"], entry["setup_steps"],
    )  # fmt: skip
