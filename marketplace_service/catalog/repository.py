"""Every line of the catalog's SQL: listing and searching, one entry, demo data."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

_LIST_COLUMNS = (
    "mc.id, mc.slug, mc.name, mc.description, mc.service_identifier, mc.version, mc.category,"
    " mc.vendor, mc.auth_scheme, mc.available_scopes, mc.logo_url, mc.setup_guide_url,"
    " mc.is_featured, mc.allow_multiple, mc.endpoint_url IS NOT NULL AS deployed,"
    " mc.published_at, mc.created_at, mc.updated_at, mc.verification, mc.verification_note,"
    # what an install or an upgrade gets: the newest version its publisher has not withdrawn
    " (SELECT v.version FROM marketplace_connector_versions v WHERE v.connector_id = mc.id"
    " AND v.withdrawn_at IS NULL ORDER BY v.id DESC LIMIT 1) AS installable_version"
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


def _after(score: str, first: int) -> str:
    """Strictly after the cursor (score ``$first``, name ``$first+1``) in (score DESC, name)."""
    s, n = f"${first}", f"${first + 1}"
    return f"({s}::float8 IS NULL OR {score} < {s} OR ({score} = {s} AND mc.name > {n}::text))"


@dataclass(frozen=True)
class Filters:
    """``None`` means "any"."""

    tenant_id: uuid.UUID
    category: str | None = None
    auth_scheme: str | None = None
    featured: bool | None = None
    installed: bool | None = None
    verification: str | None = None


def _where(first: int, *, with_category: bool = True) -> str:
    """The filter conditions on parameters ``$first`` .. ``$first+4`` (category, auth scheme,
    featured, installed, verification level); the caller's tenant is always ``$1``."""
    c, a, f, i, v = range(first, first + 5)
    parts = [
        f"(${c}::text IS NULL OR mc.category = ${c})" if with_category else f"(${c}::text IS NULL)",
        f"(${a}::text IS NULL OR mc.auth_scheme = ${a})",
        f"(${f}::boolean IS NULL OR mc.is_featured = ${f})",
        f"(${i}::boolean IS NULL OR EXISTS (SELECT 1 FROM integration_connectors ic"
        f" WHERE ic.tenant_id = $1 AND ic.marketplace_connector_id = mc.id) = ${i})",
        f"(${v}::text IS NULL OR mc.verification = ${v})",
    ]
    return " AND ".join(parts)


def _filter_args(filters: Filters, *, with_category: bool = True) -> list[Any]:
    return [
        filters.category if with_category else None,
        filters.auth_scheme,
        filters.featured,
        filters.installed,
        filters.verification,
    ]


async def by_name(
    conn: asyncpg.Connection,
    filters: Filters,
    *,
    query: str | None,
    after: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    """A page in name order (names are unique), strictly after ``after``: (id, name). With
    ``query`` (tsquery text), only entries matching it."""
    return await conn.fetch(
        "SELECT mc.id, mc.name FROM marketplace_connectors mc"
        f" WHERE {_where(2)} AND ($7::text IS NULL OR mc.name > $7)"
        " AND ($8::tsquery IS NULL OR mc.search_vector @@ $8)"
        " ORDER BY mc.name LIMIT $9",
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
    after ``after`` = (popularity, name): (id, name, popularity). With ``query`` (tsquery
    text), only matches."""
    after_count, after_name = after if after else (None, None)
    return await conn.fetch(
        "SELECT mc.id, mc.name, coalesce(ic.installs, 0) AS popularity"
        " FROM marketplace_connectors mc LEFT JOIN marketplace_install_counts ic"
        " ON ic.marketplace_connector_id = mc.id"
        f" WHERE {_where(2)}"
        " AND ($7::tsquery IS NULL OR mc.search_vector @@ $7)"
        " AND ($8::bigint IS NULL OR coalesce(ic.installs, 0) < $8"
        " OR (coalesce(ic.installs, 0) = $8 AND mc.name > $9))"
        " ORDER BY popularity DESC, mc.name LIMIT $10",
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
    broad: Callable[[], Awaitable[bool]],
    among: Callable[[], list[uuid.UUID]] | None = None,
) -> list[asyncpg.Record]:
    """Entries matching ``query`` (tsquery text), best first (score, then name); strictly
    after ``after``. ``name_prefix`` is a LIKE pattern (escaped) of what was typed, lower case.

    Every title score is above every description score, so the title tier is read first and
    the description tier only when that leaves room on the page. The description tier is read
    one of two ways to the same order, as ``broad()`` says (asked only then): for many matches,
    in its index order, stopping after a page; for few, every match through the GIN index, then
    a sort (reading in name order would scan the whole catalog for a handful of rows). For
    few, ``among()``, when given, names entries that include every match under the filters
    (from the in-memory index), so only those rows are read instead of every match of the query
    in any category. The page's full rows are read once chosen."""
    after_score, after_name = after if after else (None, None)
    where = (*_filter_args(filters), after_score, after_name)
    rows = []
    if after_score is None or after_score >= 1:  # the cursor is not past the title tier yet
        rows = await conn.fetch(_TITLES, filters.tenant_id, query, name_prefix, *where, limit)
    if len(rows) < limit:
        room = limit - len(rows)
        if await broad():
            rows += await conn.fetch(_TEXTS_BROAD, filters.tenant_id, query, *where, room)
        elif among is not None:
            rows += await conn.fetch(_TEXTS_AMONG, filters.tenant_id, query, *where, room, among())
        else:
            rows += await conn.fetch(_TEXTS_NARROW, filters.tenant_id, query, *where, room)
    return rows


_PAGE = " SELECT id, name, score FROM hits ORDER BY score DESC, name"
# $1 tenant, $2 query, $3 name prefix, $4..$8 filters, $9 $10 cursor, $11 limit
_TITLES = (
    "WITH hits AS (SELECT mc.id, mc.name, score FROM marketplace_connectors mc,"
    f" (SELECT $2::tsquery) AS given(q), LATERAL (SELECT {_TITLE_SCORE} AS score) s"
    f" WHERE mc.title_vector @@ q AND {_where(4)} AND {_after('score', 9)}"
    " ORDER BY score DESC, mc.name LIMIT $11)" + _PAGE
)
# $1 tenant, $2 query, $3..$7 filters, $8 $9 cursor, $10 limit
_TEXTS_WHERE = (
    "mc.search_vector @@ q AND NOT mc.title_vector @@ q"
    f" AND {_where(3)} AND {_after(_TEXT_SCORE, 8)}"
)
_TEXTS_BROAD = (
    f"WITH hits AS (SELECT mc.id, mc.name, {_TEXT_SCORE} AS score"
    " FROM marketplace_connectors mc, (SELECT $2::tsquery) AS given(q)"
    f" WHERE {_TEXTS_WHERE} ORDER BY mc.is_featured DESC, mc.name LIMIT $10)" + _PAGE
)
# ... and $11 the entries to look among
_TEXTS_AMONG = (
    f"WITH hits AS (SELECT mc.id, mc.name, {_TEXT_SCORE} AS score"
    " FROM marketplace_connectors mc, (SELECT $2::tsquery) AS given(q)"
    f" WHERE mc.id = ANY($11::uuid[]) AND {_TEXTS_WHERE} ORDER BY score DESC, mc.name LIMIT $10)"
    + _PAGE
)
_TEXTS_NARROW = (
    "WITH matches AS MATERIALIZED (SELECT mc.id FROM marketplace_connectors mc"
    " WHERE mc.search_vector @@ $2::tsquery),"
    f" hits AS (SELECT mc.id, mc.name, {_TEXT_SCORE} AS score FROM matches"
    " JOIN marketplace_connectors mc ON mc.id = matches.id, (SELECT $2::tsquery) AS given(q)"
    f" WHERE {_TEXTS_WHERE} ORDER BY score DESC, mc.name LIMIT $10)" + _PAGE
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


async def page_rows(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, ids: list[uuid.UUID]
) -> dict[uuid.UUID, asyncpg.Record]:
    """The full rows of a page's entries, each with the caller's installed versions and
    everyone's installs, by id."""
    rows = await conn.fetch(
        f"SELECT {_LIST_COLUMNS}, {_TENANT_VERSIONS}, {_INSTALLS}"
        " FROM marketplace_connectors mc WHERE mc.id = ANY($2::uuid[])",
        tenant_id,
        ids,
    )
    return {r["id"]: r for r in rows}


async def fuzzy_candidates(
    conn: asyncpg.Connection, filters: Filters, *, words: list[str], query: str, limit: int
) -> list[asyncpg.Record]:
    """Entries with one of ``words`` in their name, vendor or category (through the title
    index) that do not match ``query`` (tsquery text), under every filter but the category;
    for the service to rank by edit distance. At most ``limit``, the same ones every time
    (by id), so pages of typo matches follow each other."""
    return await conn.fetch(
        "SELECT mc.id, mc.name, mc.vendor, mc.category FROM marketplace_connectors mc"
        " WHERE mc.title_vector @@ to_tsquery('english', array_to_string($2::text[], ' | '))"
        " AND NOT mc.search_vector @@ $3::tsquery"
        f" AND {_where(4, with_category=False)} ORDER BY mc.id LIMIT $9",
        filters.tenant_id, words, query, *_filter_args(filters, with_category=False), limit,
    )  # fmt: skip


async def tsqueries(conn: asyncpg.Connection, terms: list[str]) -> list[str]:
    """Each to_tsquery term (``"pay:*"``) as English text search normalizes it, or as typed
    where English finds no lexeme in it (a stop word: ``"in:*"``); "" where neither does."""
    rows = await conn.fetch(
        "SELECT coalesce(nullif(to_tsquery('english', t)::text, ''),"
        " to_tsquery('simple', t)::text) AS q FROM unnest($1::text[]) WITH ORDINALITY u(t, i)"
        " ORDER BY i",
        terms,
    )
    return [r["q"] for r in rows]


async def catalog_version(conn: asyncpg.Connection) -> tuple[int, int]:
    """A fingerprint of the catalog that changes whenever an entry is added, changed (its
    updated_at) or removed, in whatever order concurrent changes commit."""
    row = await conn.fetchrow(
        "SELECT count(*) AS n, coalesce(sum(hashtext(id::text || updated_at::text)), 0) AS h"
        " FROM marketplace_connectors"
    )
    return row["n"], row["h"]


async def titles(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every entry's (id, name, vendor, category): the words a typo can stand for."""
    return await conn.fetch("SELECT id, name, vendor, category FROM marketplace_connectors")


async def facet_rows(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every entry, in id order, with what the in-memory index (facets.py) needs: (id,
    category, auth scheme, featured, search vector lexemes, name, vendor, title vector
    lexemes, verification level)."""
    return await conn.fetch(
        "SELECT id, category, auth_scheme, is_featured, tsvector_to_array(search_vector),"
        " name, vendor, tsvector_to_array(title_vector), verification"
        " FROM marketplace_connectors ORDER BY id"
    )


async def installed_entries(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> list[uuid.UUID]:
    """The catalog entries the tenant has installed (once or more)."""
    rows = await conn.fetch(
        "SELECT DISTINCT marketplace_connector_id FROM integration_connectors"
        " WHERE tenant_id = $1 AND marketplace_connector_id IS NOT NULL",
        tenant_id,
    )
    return [r[0] for r in rows]


async def category_counts(
    conn: asyncpg.Connection, filters: Filters, *, query: str | None
) -> dict[str, int]:
    """Entries per category under every filter but the category itself (so a client shows
    what each category would give)."""
    rows = await conn.fetch(
        "SELECT coalesce(mc.category, '') AS category, count(*) AS n"
        " FROM marketplace_connectors mc"
        " WHERE ($2::tsquery IS NULL OR mc.search_vector @@ $2)"
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
    """The tenant's installs of an entry (read only: connector_service owns them), with the
    status connector_service shows (update_required on a withdrawn version)."""
    return await conn.fetch(
        "SELECT id, connector_name, version, status FROM integration_connectors_shown"
        " WHERE tenant_id = $1 AND marketplace_connector_id = $2 ORDER BY created_at, id",
        tenant_id,
        entry_id,
    )


async def install_count(conn: asyncpg.Connection, entry_id: uuid.UUID) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM integration_connectors WHERE marketplace_connector_id = $1",
        entry_id,
    )


async def upsert(conn: asyncpg.Connection, entry: dict[str, Any]) -> str | None:
    """Insert or refresh one of the platform's catalog entries by slug (demo data and deployed
    examples). An entry a tenant published is never touched, nor adopted: returns why the entry
    was skipped (a tenant's entry holds its slug, name or service identifier), None when stored."""
    if holder := await _tenant_holder(conn, entry):
        return holder
    try:
        async with conn.transaction():  # a savepoint: a tenant may publish the name meanwhile
            stored = await conn.fetchval(_UPSERT, *(entry.get(c) for c in _UPSERT_COLUMNS))
    except asyncpg.UniqueViolationError:
        if holder := await _tenant_holder(conn, entry):
            return holder
        raise
    return None if stored else f"a tenant published '{entry['slug']}' meanwhile"


async def _tenant_holder(conn: asyncpg.Connection, entry: dict[str, Any]) -> str | None:
    row = await conn.fetchrow(
        "SELECT slug, name FROM marketplace_connectors WHERE published_by_tenant IS NOT NULL"
        " AND (slug = $1 OR name = $2 OR service_identifier = $3) ORDER BY slug <> $1 LIMIT 1",
        entry["slug"], entry["name"], entry["service_identifier"],
    )  # fmt: skip
    if row is None:
        return None
    if row["slug"] == entry["slug"]:
        return f"a tenant published '{entry['slug']}'"
    return f"a tenant's entry '{row['slug']}' is called {row['name']!r} or uses the identifier"


_UPSERT_COLUMNS = (
    "slug", "name", "description", "service_identifier", "version", "logo_url", "category",
    "vendor", "auth_scheme", "default_auth_config", "available_scopes", "setup_guide_url",
    "is_featured", "manifest", "endpoint_url", "allow_multiple", "verification",
    "verification_note",
)  # fmt: skip
# The WHERE keeps a row a tenant published as it is (ON CONFLICT re-checks it on the locked row).
_UPSERT = """
    INSERT INTO marketplace_connectors (
        slug, name, description, service_identifier, version, logo_url, category, vendor,
        auth_scheme, default_auth_config, available_scopes, setup_guide_url, is_featured,
        manifest, endpoint_url, allow_multiple, verification, verification_note)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
    ON CONFLICT (slug) DO UPDATE SET
        name = EXCLUDED.name, description = EXCLUDED.description,
        service_identifier = EXCLUDED.service_identifier, version = EXCLUDED.version,
        logo_url = EXCLUDED.logo_url, category = EXCLUDED.category, vendor = EXCLUDED.vendor,
        auth_scheme = EXCLUDED.auth_scheme, default_auth_config = EXCLUDED.default_auth_config,
        available_scopes = EXCLUDED.available_scopes,
        setup_guide_url = EXCLUDED.setup_guide_url, is_featured = EXCLUDED.is_featured,
        manifest = EXCLUDED.manifest,
        endpoint_url = COALESCE(EXCLUDED.endpoint_url, marketplace_connectors.endpoint_url),
        allow_multiple = EXCLUDED.allow_multiple, verification = EXCLUDED.verification,
        verification_note = EXCLUDED.verification_note
    WHERE marketplace_connectors.published_by_tenant IS NULL
    RETURNING TRUE
"""


async def levels(
    conn: asyncpg.Connection, *, verification: str | None, category: str | None
) -> list[asyncpg.Record]:
    """Every entry (of a level, of a category, when given) by name: slug, name, category, its
    verification level and note, and whether it runs (``deployed``: it has an endpoint)."""
    return await conn.fetch(
        "SELECT slug, name, category, verification, verification_note,"
        " endpoint_url IS NOT NULL AS deployed FROM marketplace_connectors"
        " WHERE ($1::text IS NULL OR verification = $1) AND ($2::text IS NULL OR category = $2)"
        " ORDER BY name",
        verification,
        category,
    )
