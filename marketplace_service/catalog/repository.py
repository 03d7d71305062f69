"""Every line of the catalog's SQL: listing and searching, one entry, demo data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

_LIST_COLUMNS = (
    "mc.id, mc.slug, mc.name, mc.description, mc.service_identifier, mc.version, mc.category,"
    " mc.vendor, mc.auth_scheme, mc.available_scopes, mc.logo_url, mc.setup_guide_url,"
    " mc.is_featured, mc.allow_multiple, mc.endpoint_url IS NOT NULL AS deployed,"
    " mc.published_at, mc.created_at, mc.updated_at"
)
_DETAIL_COLUMNS = (
    _LIST_COLUMNS + ", mc.manifest, mc.default_auth_config, mc.setup_steps, mc.published_by_tenant"
)
# The caller's installs of an entry (versions), and everyone's installs (popularity).
_TENANT_VERSIONS = (
    "ARRAY(SELECT ic.version FROM integration_connectors ic"
    " WHERE ic.tenant_id = $1 AND ic.marketplace_connector_id = mc.id) AS installed_versions"
)
_INSTALLS = (
    "(SELECT count(*) FROM integration_connectors ic"
    " WHERE ic.marketplace_connector_id = mc.id) AS installs"
)
# Relevance, in two tiers. A match in the name, vendor or category scores 1 plus its rank on
# those fields alone (saturating, so an entry does not win by repeating a word), 0.3 if
# featured, 0.5 if the name starts with what was typed ("pay" finds PayPal first): 1 to 2.8.
# A match in the description only scores 0.3 if featured, else 0, and ties go by name, so
# that tier is read in index order and a broad query never ranks thousands of matches.
_TITLE_SCORE = (
    "(1 + least(ts_rank(mc.title_vector, q), 0.3) / 0.3"
    " + CASE WHEN mc.is_featured THEN 0.3 ELSE 0 END"
    " + CASE WHEN lower(mc.name) LIKE $3 THEN 0.5 ELSE 0 END)::float8"
)
_TEXT_SCORE = "(CASE WHEN mc.is_featured THEN 0.3 ELSE 0 END)::float8"
_AFTER = "($8::float8 IS NULL OR {s} < $8 OR ({s} = $8 AND mc.name > $9::text))"


@dataclass(frozen=True)
class Filters:
    """``None`` means "any"."""

    tenant_id: uuid.UUID
    category: str | None = None
    auth_scheme: str | None = None
    featured: bool | None = None
    installed: bool | None = None


def _where(first: int, *, with_category: bool = True) -> str:
    """The filter conditions on parameters ``$first`` .. ``$first+3`` (category, auth scheme,
    featured, installed); the caller's tenant is always ``$1``."""
    c, a, f, i = first, first + 1, first + 2, first + 3
    parts = [
        f"(${c}::text IS NULL OR mc.category = ${c})" if with_category else f"(${c}::text IS NULL)",
        f"(${a}::text IS NULL OR mc.auth_scheme = ${a})",
        f"(${f}::boolean IS NULL OR mc.is_featured = ${f})",
        f"(${i}::boolean IS NULL OR EXISTS (SELECT 1 FROM integration_connectors ic"
        f" WHERE ic.tenant_id = $1 AND ic.marketplace_connector_id = mc.id) = ${i})",
    ]
    return " AND ".join(parts)


def _filter_args(filters: Filters, *, with_category: bool = True) -> list[Any]:
    return [
        filters.category if with_category else None,
        filters.auth_scheme,
        filters.featured,
        filters.installed,
    ]


async def by_name(
    conn: asyncpg.Connection,
    filters: Filters,
    *,
    query: str | None,
    after: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    """A page in name order (names are unique), strictly after ``after``. With ``query``
    (to_tsquery text), only entries matching it."""
    return await conn.fetch(
        f"SELECT {_LIST_COLUMNS} FROM marketplace_connectors mc"
        f" WHERE {_where(2)} AND ($6::text IS NULL OR mc.name > $6)"
        " AND ($7::text IS NULL OR mc.search_vector @@ to_tsquery('english', $7))"
        " ORDER BY mc.name LIMIT $8",
        filters.tenant_id, *_filter_args(filters), after, query, limit,
    )  # fmt: skip


async def by_popularity(
    conn: asyncpg.Connection,
    filters: Filters,
    *,
    query: str | None,
    after: tuple[int, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """A page by installs across all tenants as last counted (most first), then name; strictly
    after ``after`` = (popularity, name). With ``query`` (to_tsquery text), only matches."""
    after_count, after_name = after if after else (None, None)
    return await conn.fetch(
        "WITH hits AS (SELECT mc.id, mc.name, coalesce(ic.installs, 0) AS popularity"
        " FROM marketplace_connectors mc LEFT JOIN marketplace_install_counts ic"
        " ON ic.marketplace_connector_id = mc.id"
        f" WHERE {_where(2)}"
        " AND ($6::text IS NULL OR mc.search_vector @@ to_tsquery('english', $6))"
        " AND ($7::bigint IS NULL OR coalesce(ic.installs, 0) < $7"
        " OR (coalesce(ic.installs, 0) = $7 AND mc.name > $8))"
        " ORDER BY popularity DESC, mc.name LIMIT $9)"
        f" SELECT {_LIST_COLUMNS}, hits.popularity FROM hits"
        " JOIN marketplace_connectors mc ON mc.id = hits.id ORDER BY popularity DESC, mc.name",
        filters.tenant_id, *_filter_args(filters), query, after_count, after_name, limit,
    )  # fmt: skip


async def by_relevance(
    conn: asyncpg.Connection,
    filters: Filters,
    *,
    query: str,
    name_prefix: str,
    after: tuple[float, str] | None,
    limit: int,
    broad: bool,
) -> list[asyncpg.Record]:
    """Entries matching ``query`` (to_tsquery text), best first (score, then name); strictly
    after ``after``. ``name_prefix`` is a LIKE pattern (escaped) of what was typed, lower case.

    Two ways to the same order: a ``broad`` query (many matches) reads each tier in its order
    and stops after a page; a narrow one takes every match through the GIN index, then sorts
    (reading the description tier in name order would scan the whole catalog for a handful of
    rows). The page's full rows are read once chosen."""
    sql = _BROAD if broad else _NARROW
    after_score, after_name = after if after else (None, None)
    return await conn.fetch(
        sql, filters.tenant_id, query, name_prefix, *_filter_args(filters), after_score,
        after_name, limit,
    )  # fmt: skip


_PAGE = (
    f" SELECT {_LIST_COLUMNS}, hits.score FROM hits"
    " JOIN marketplace_connectors mc ON mc.id = hits.id ORDER BY hits.score DESC, mc.name"
)
_BROAD = (
    "WITH titles AS (SELECT mc.id, mc.name, score FROM marketplace_connectors mc,"
    f" to_tsquery('english', $2) q, LATERAL (SELECT {_TITLE_SCORE} AS score) s"
    f" WHERE mc.title_vector @@ q AND {_where(4)} AND {_AFTER.format(s='score')}"
    " ORDER BY score DESC, mc.name LIMIT $10),"
    f" texts AS (SELECT mc.id, mc.name, {_TEXT_SCORE} AS score"
    " FROM marketplace_connectors mc, to_tsquery('english', $2) q"
    f" WHERE mc.search_vector @@ q AND NOT mc.title_vector @@ q AND {_where(4)}"
    f" AND {_AFTER.format(s=_TEXT_SCORE)} ORDER BY mc.is_featured DESC, mc.name LIMIT $10),"
    " hits AS (SELECT * FROM titles UNION ALL SELECT * FROM texts"
    " ORDER BY score DESC, name LIMIT $10)" + _PAGE
)
_NARROW = (
    "WITH matches AS MATERIALIZED (SELECT mc.id FROM marketplace_connectors mc"
    f" WHERE mc.search_vector @@ to_tsquery('english', $2) AND {_where(4)}),"
    " hits AS (SELECT mc.id, mc.name, score FROM matches"
    " JOIN marketplace_connectors mc ON mc.id = matches.id, to_tsquery('english', $2) q,"
    f" LATERAL (SELECT CASE WHEN mc.title_vector @@ q THEN {_TITLE_SCORE}"
    f" ELSE {_TEXT_SCORE} END AS score) s"
    f" WHERE {_AFTER.format(s='score')} ORDER BY score DESC, mc.name LIMIT $10)" + _PAGE
)


async def refresh_install_counts(conn: asyncpg.Connection) -> int:
    """Count every entry's installs again; returns how many counts changed."""
    result = await conn.execute(
        "INSERT INTO marketplace_install_counts AS c (marketplace_connector_id, installs)"
        " SELECT mc.id, count(ic.id) FROM marketplace_connectors mc"
        " LEFT JOIN integration_connectors ic ON ic.marketplace_connector_id = mc.id"
        " GROUP BY mc.id"
        " ON CONFLICT (marketplace_connector_id) DO UPDATE"
        " SET installs = EXCLUDED.installs, counted_at = now()"
        " WHERE c.installs <> EXCLUDED.installs"
    )
    return int(result.rsplit(" ", 1)[-1])


async def install_state(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, ids: list[uuid.UUID]
) -> dict[uuid.UUID, asyncpg.Record]:
    """For each entry in ``ids``: the caller's installed versions and everyone's installs."""
    rows = await conn.fetch(
        f"SELECT mc.id, {_TENANT_VERSIONS}, {_INSTALLS} FROM marketplace_connectors mc"
        " WHERE mc.id = ANY($2::uuid[])",
        tenant_id,
        ids,
    )
    return {r["id"]: r for r in rows}


async def entries_by_id(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_LIST_COLUMNS} FROM marketplace_connectors mc WHERE mc.id = ANY($1::uuid[])",
        ids,
    )


async def fuzzy_candidates(
    conn: asyncpg.Connection, filters: Filters, *, words: list[str], limit: int
) -> list[asyncpg.Record]:
    """Entries with one of ``words`` in their name, vendor or category (through the title
    index), for the service to rank by edit distance."""
    return await conn.fetch(
        "SELECT mc.id, mc.name, mc.vendor, mc.category, mc.is_featured"
        " FROM marketplace_connectors mc"
        " WHERE mc.title_vector @@ to_tsquery('english', array_to_string($2::text[], ' | '))"
        f" AND {_where(3)} LIMIT $7",
        filters.tenant_id, words, *_filter_args(filters), limit,
    )  # fmt: skip


async def title_words(conn: asyncpg.Connection) -> list[str]:
    """Every word of three letters or more in the entries' names, vendors and categories, lower
    case (what a typo can stand for; digits are not words here)."""
    rows = await conn.fetch(
        "SELECT DISTINCT w FROM marketplace_connectors mc, regexp_split_to_table("
        "lower(mc.name || ' ' || coalesce(mc.vendor, '') || ' ' || coalesce(mc.category, '')),"
        " '[^[:alpha:]]+') w WHERE length(w) >= 3"
    )
    return [r["w"] for r in rows]


async def category_counts(
    conn: asyncpg.Connection, filters: Filters, *, query: str | None
) -> dict[str, int]:
    """Entries per category under every filter but the category itself (so a client shows
    what each category would give)."""
    rows = await conn.fetch(
        "SELECT coalesce(mc.category, '') AS category, count(*) AS n"
        " FROM marketplace_connectors mc"
        " WHERE ($2::text IS NULL OR mc.search_vector @@ to_tsquery('english', $2))"
        f" AND {_where(3, with_category=False)} GROUP BY 1 ORDER BY 1",
        filters.tenant_id, query, *_filter_args(filters, with_category=False),
    )  # fmt: skip
    return {r["category"]: r["n"] for r in rows}


async def get_by_slug(conn: asyncpg.Connection, slug: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_DETAIL_COLUMNS} FROM marketplace_connectors mc WHERE mc.slug = $1", slug
    )


async def installs_of(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, entry_id: uuid.UUID
) -> list[asyncpg.Record]:
    """The tenant's installs of an entry (read only: connector_service owns them)."""
    return await conn.fetch(
        "SELECT id, connector_name, version, status FROM integration_connectors"
        " WHERE tenant_id = $1 AND marketplace_connector_id = $2 ORDER BY created_at, id",
        tenant_id,
        entry_id,
    )


async def install_count(conn: asyncpg.Connection, entry_id: uuid.UUID) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM integration_connectors WHERE marketplace_connector_id = $1",
        entry_id,
    )


async def upsert(conn: asyncpg.Connection, entry: dict[str, Any]) -> None:
    """Insert or refresh a catalog entry by slug (demo data and deployed examples)."""
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
