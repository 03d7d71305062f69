from __future__ import annotations

from typing import Any

import asyncpg

_LIST_COLUMNS = (
    "id, slug, name, description, service_identifier, version, category, vendor, auth_scheme,"
    " available_scopes, logo_url, setup_guide_url, is_featured, allow_multiple,"
    " endpoint_url IS NOT NULL AS deployed, created_at, updated_at"
)
_DETAIL_COLUMNS = _LIST_COLUMNS + ", manifest, default_auth_config"


async def list_entries(
    conn: asyncpg.Connection,
    *,
    category: str | None,
    featured: bool | None,
    after_name: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    """A page in name order (names are unique), strictly after ``after_name``."""
    return await conn.fetch(
        f"SELECT {_LIST_COLUMNS} FROM marketplace_connectors"
        " WHERE ($1::text IS NULL OR category = $1)"
        " AND ($2::boolean IS NULL OR is_featured = $2)"
        " AND ($3::text IS NULL OR name > $3)"
        " ORDER BY name LIMIT $4",
        category,
        featured,
        after_name,
        limit,
    )


async def get_by_slug(conn: asyncpg.Connection, slug: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_DETAIL_COLUMNS} FROM marketplace_connectors WHERE slug = $1",
        slug,
    )


async def upsert(conn: asyncpg.Connection, entry: dict[str, Any]) -> None:
    """Insert or refresh a catalog entry by slug (demo data and, later, publishing)."""
    await conn.execute(
        """
        INSERT INTO marketplace_connectors (
            slug, name, description, service_identifier, version, logo_url, category, vendor,
            auth_scheme, default_auth_config, available_scopes, setup_guide_url, is_featured,
            manifest, endpoint_url, allow_multiple)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
        ON CONFLICT (slug) DO UPDATE SET
            name = EXCLUDED.name, description = EXCLUDED.description,
            service_identifier = EXCLUDED.service_identifier, version = EXCLUDED.version,
            logo_url = EXCLUDED.logo_url, category = EXCLUDED.category, vendor = EXCLUDED.vendor,
            auth_scheme = EXCLUDED.auth_scheme, default_auth_config = EXCLUDED.default_auth_config,
            available_scopes = EXCLUDED.available_scopes,
            setup_guide_url = EXCLUDED.setup_guide_url, is_featured = EXCLUDED.is_featured,
            manifest = EXCLUDED.manifest,
            endpoint_url = COALESCE(EXCLUDED.endpoint_url, marketplace_connectors.endpoint_url),
            allow_multiple = EXCLUDED.allow_multiple
        """,
        entry["slug"],
        entry["name"],
        entry["description"],
        entry["service_identifier"],
        entry["version"],
        entry["logo_url"],
        entry["category"],
        entry["vendor"],
        entry["auth_scheme"],
        entry["default_auth_config"],
        entry["available_scopes"],
        entry["setup_guide_url"],
        entry["is_featured"],
        entry["manifest"],
        entry.get("endpoint_url"),
        entry["allow_multiple"],
    )
