from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import math
import uuid
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg
import numpy as np
from cachetools import LRUCache
from prometheus_client import Counter as Tally

from common.errors import NotFound
from common.pagination import decode_cursor, encode_cursor
from common.versions import newer
from marketplace_service.catalog import definitions as catalog_definitions
from marketplace_service.catalog import fuzzy, repository
from marketplace_service.catalog.facets import Facets, Reading, term

DEMO_CATALOG = Path(__file__).with_name("demo_catalog.json")
DEMO_VERSION = "1.0.0"


class CatalogEntryNotFound(NotFound):
    code, title = "connector_not_found", "Connector not found"


class Sort(StrEnum):
    relevance = "relevance"
    name = "name"
    popularity = "popularity"


# Above this many matches a query is ranked tier by tier (see repository.by_relevance).
BROAD_MATCHES = 500
FUZZY_CANDIDATES = 1000


CATEGORY_COUNTS = Tally(
    "seedos_marketplace_category_counts_total",
    "Searches' category counts by where they came from: memory (the catalog's index, current)"
    " or sql (no current reading, or a term of several words).",
    ["source"],
)

# a term as typed ("pay:*") -> its tsquery text ("'pay':*"), or "" for one with no lexeme
_TERMS: LRUCache[str, str] = LRUCache(maxsize=10_000)


async def tsterms(conn: asyncpg.Connection, words: list[str]) -> list[str]:
    """What the entries must match, as tsquery texts (all of them, each a ``$n::tsquery``):
    every word, each a prefix (search as you type) except one-letter words, which would match
    too much. Words are stemmed as English, except those English drops as stop words, which are
    kept as typed ("in" is how Intercom starts); a word with nothing to match gives no term."""
    terms = [w if len(w) < 2 else f"{w}:*" for w in words]  # q is at most 200 characters
    return [t for t in await _normalized(conn, terms) if t]


async def _normalized(conn: asyncpg.Connection, terms: list[str]) -> list[str]:
    """Each to_tsquery term as ``repository.tsqueries`` normalizes it, each distinct one asked
    of PostgreSQL once per process."""
    known = {t: _TERMS[t] for t in terms if t in _TERMS}
    if missing := [t for t in dict.fromkeys(terms) if t not in known]:
        for term_, normalized in zip(
            missing, await repository.tsqueries(conn, missing), strict=True
        ):
            known[term_] = _TERMS[term_] = normalized
    return [known[t] for t in terms]


def _like_prefix(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


async def search(
    conn: asyncpg.Connection,
    *,
    filters: repository.Filters,
    q: str | None,
    sort: Sort | None,
    cursor: str | None,
    limit: int,
    vocabulary: fuzzy.Vocabulary,
    facets: Facets | None = None,
    spare: asyncpg.Connection | None = None,
) -> dict[str, Any]:
    """A page of the catalog, searched and filtered, with per-category counts.

    Relevance (the default with ``q``) pages by (score, name): title matches, then description
    matches, then, for a short query the text search finds fewer than ``TYPO_WHEN_FEWER``
    entries for, typo-tolerant matches (scores below every text match). What a query finds and
    counts does not depend on the page size or the page. The counts come from ``facets`` (in
    memory) when it has a current reading; else they are read on ``spare`` (a second
    connection) at the same time as the page, when there is one, since for a broad query they
    take as long as everything else together."""
    words = fuzzy.words(q or "")
    terms = await tsterms(conn, words) if words else []
    query = " & ".join(f"({t})" for t in terms) or None
    sort = sort or (Sort.relevance if query else Sort.name)
    if sort is Sort.relevance and query is None:
        sort = Sort.name  # nothing to rank by
    key = decode_cursor(cursor, parse=_CURSOR[sort])
    if q and q.strip() and query is None:  # typed, but nothing text search can hold ("!!!")
        return {"items": [], "next_cursor": None, "category_counts": {}}
    known = await _in_memory(conn, facets, filters, terms)
    CATEGORY_COUNTS.labels("sql" if known is None else "memory").inc()
    if known is None and spare is not None:
        counted = asyncio.ensure_future(repository.category_counts(spare, filters, query=query))
    else:
        counted = asyncio.get_running_loop().create_future()
        counted.set_result(
            known.counts(filters) if known is not None
            else await repository.category_counts(conn, filters, query=query)
        )  # fmt: skip
    try:
        if known is not None and _matches(filters, counted.result()) == 0:
            page = []  # nothing to read: no entry matches
        else:
            page = await _page(
                conn, filters, sort, query, words, key, limit + 1, counted, known=known
            )
        counts = await counted
        if sort is Sort.relevance and _matches(filters, counts) < TYPO_WHEN_FEWER:
            page += await _typo_matches(
                conn, filters, words, query=query, vocabulary=vocabulary, counts=counts,
                after=(-key[0], key[1]) if key else None, room=limit + 1 - len(page), known=known,
            )  # fmt: skip
    finally:
        if not counted.done():  # the page failed: the counts are not wanted
            counted.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await counted
    page, more = page[:limit], len(page) > limit
    next_key = _next_key(sort, page[-1]) if more else None
    items = await _items(conn, filters.tenant_id, page)
    return {
        "items": items,
        "next_cursor": encode_cursor(next_key) if next_key else None,
        "category_counts": counts,
    }


@dataclass(frozen=True)
class _Known:
    """A search the in-memory index answers: its current reading, the query's terms (one
    lexeme each), and the caller's installed entries when the installed filter needs them."""

    reading: Reading
    terms: list[tuple[str, bool]]
    installed: tuple[bool, list[uuid.UUID]] | None

    def filtered(self, filters: repository.Filters) -> dict[str, Any]:
        """The filters but the category, as the reading takes them."""
        return {"auth_scheme": filters.auth_scheme, "featured": filters.featured,
                "installed": self.installed, "verification": filters.verification}  # fmt: skip

    def counts(self, filters: repository.Filters) -> dict[str, int]:
        """``repository.category_counts``."""
        return self.reading.counts(self.terms, **self.filtered(filters))


async def _in_memory(
    conn: asyncpg.Connection,
    facets: Facets | None,
    filters: repository.Filters,
    terms: list[str],
) -> _Known | None:
    """None when the index has no current reading or cannot evaluate a term exactly."""
    reading = facets.current if facets else None
    parsed = [found for t in terms if (found := term(t)) is not None]
    if reading is None or len(parsed) < len(terms):
        return None
    installed = None
    if filters.installed is not None:
        mine = await repository.installed_entries(conn, filters.tenant_id)
        installed = (filters.installed, mine)
    return _Known(reading, parsed, installed)


# A short query the text search finds fewer entries for than this also gets typo matches.
TYPO_WHEN_FEWER = 20

_CURSOR: dict[Sort, tuple[type, ...]] = {
    Sort.name: (str,), Sort.popularity: (int, str), Sort.relevance: (float, str),
}  # fmt: skip


def _matches(filters: repository.Filters, counts: dict[str, int]) -> int:
    """Text matches under every filter, from the counts (which leave out the category)."""
    return counts.get(filters.category, 0) if filters.category else sum(counts.values())


def _next_key(sort: Sort, last: Any) -> list[str]:
    if sort is Sort.name:
        return [last["name"]]
    if sort is Sort.popularity:
        return [str(last["popularity"]), last["name"]]
    return [repr(last["score"]), last["name"]]


async def _page(
    conn: asyncpg.Connection,
    filters: repository.Filters,
    sort: Sort,
    query: str | None,
    words: list[str],
    key: list[Any] | None,
    limit: int,
    counted: asyncio.Future[dict[str, int]],
    known: _Known | None = None,
) -> list[Any]:
    """Up to ``limit`` rows in ``sort`` order after the cursor ``key`` (text matches only)."""
    if sort is Sort.name:
        return await repository.by_name(
            conn, filters, query=query, after=key[0] if key else None, limit=limit
        )
    if sort is Sort.popularity:
        return await repository.by_popularity(
            conn, filters, query=query, after=(key[0], key[1]) if key else None, limit=limit
        )
    if key and key[0] < 0:  # past every text match, among the typo matches
        return []

    async def broad() -> bool:
        return _matches(filters, await counted) > BROAD_MATCHES

    def among() -> list[uuid.UUID]:
        assert known is not None
        return known.reading.matching_ids(
            known.terms, category=filters.category, **known.filtered(filters)
        )

    assert query is not None
    return list(await repository.by_relevance(
        conn, filters, query=query, name_prefix=_like_prefix(" ".join(words)),
        after=(key[0], key[1]) if key else None, limit=limit, broad=broad,
        among=among if known is not None else None,
    ))  # fmt: skip


async def _typo_matches(
    conn: asyncpg.Connection,
    filters: repository.Filters,
    words: list[str],
    *,
    query: str,
    vocabulary: fuzzy.Vocabulary,
    counts: dict[str, int],
    after: tuple[float, str] | None,
    room: int,
    known: _Known | None = None,
) -> list[dict[str, Any]]:
    """Entries a typo of a short query stands for that the full-text search did not find, best
    first: closeness, then name, with ``score`` = closeness / 100 - 2 (below every text match);
    the first ``room`` of the category asked for strictly after ``after`` (-score, name). All
    of them, in every category, are added to ``counts`` (which count under every filter but
    the category)."""
    corrected = vocabulary.corrections(words)
    if not corrected:
        return []
    close = await _close_in_memory(conn, known, filters, words, corrected) if known else None
    if close is None:
        candidates = await repository.fuzzy_candidates(
            conn, filters, words=corrected, query=query, limit=FUZZY_CANDIDATES
        )
        close = [
            (closeness, candidates[k]["id"], candidates[k]["name"], candidates[k]["category"])
            for closeness, k in vocabulary.rank(words, candidates)
        ]
    for category, n in Counter(c[3] for c in close).items():
        counts[category or ""] = counts.get(category or "", 0) + n
    ranked = sorted(
        (-(closeness / 100 - 2), name, k)
        for k, (closeness, _, name, category) in enumerate(close)
        if filters.category is None or category == filters.category
    )  # the order the cursor pages in: score descending, then name
    start = bisect.bisect_right(ranked, (*after, math.inf)) if after else 0
    return [{"id": close[k][1], "name": name, "score": -negative, "match": "typo"}
            for negative, name, k in ranked[start : start + room]]  # fmt: skip


async def _close_in_memory(
    conn: asyncpg.Connection,
    known: _Known,
    filters: repository.Filters,
    words: list[str],
    corrected: list[str],
) -> list[tuple[float, uuid.UUID, str, str | None]] | None:
    """(closeness, id, name, category) of the typo matches close enough, from the index: the
    candidates ``repository.fuzzy_candidates`` would give, ranked as ``Vocabulary.rank`` would;
    None when a corrected word is not one lexeme."""
    lexemes = []
    for text in await _normalized(conn, corrected):
        found = term(text)
        if found is None:
            return None
        lexemes.append(found[0])
    reading = known.reading
    slots = reading.typo_candidates(
        lexemes, known.terms, **known.filtered(filters), limit=FUZZY_CANDIDATES
    )
    closeness = reading.titles.closeness(words, slots)
    return [
        (float(closeness[k]), reading.ids[s], reading.names[s], reading.category_of(s))
        for k in np.flatnonzero(closeness >= fuzzy.THRESHOLD).tolist()
        for s in (int(slots[k]),)
    ]


async def _items(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, page: list[Any]
) -> list[dict[str, Any]]:
    """The page's entries in full, in page order, with how they matched (``match``, ``score``)
    and the caller's install state."""
    if not page:
        return []
    rows = await repository.page_rows(conn, tenant_id, [r["id"] for r in page])
    items = []
    for key in page:
        if (row := rows.get(key["id"])) is None:  # removed since the page was chosen
            continue
        item = dict(row)
        versions = item.pop("installed_versions")
        if "score" in key:
            item |= {"score": key["score"], "match": key.get("match", "text")}
        item |= {
            "installed": bool(versions),
            "update_available": _update_available(item.pop("installable_version"), versions),
        }
        items.append(item)
    return items


async def get_entry(conn: asyncpg.Connection, slug: str, *, tenant_id: uuid.UUID) -> dict[str, Any]:
    """One entry with what setting it up needs and the caller's installs of it."""
    row = await repository.get_by_slug(conn, slug)
    if row is None:
        raise CatalogEntryNotFound(f"no connector '{slug}' in the catalog")
    entry = dict(row)
    installable = entry.pop("installable_version")
    installs = [
        {**dict(i), "update_available": _update_available(installable, [i["version"]])}
        for i in await repository.installs_of(conn, tenant_id, entry["id"])
    ]
    manifest = entry["manifest"] or {}
    entry |= {
        "config_schema": manifest.get("config_schema", {}),
        "setup_steps": entry["setup_steps"] or default_setup_steps(entry),
        "installs": await repository.install_count(conn, entry["id"]),
        "installed": bool(installs),
        "update_available": any(i["update_available"] for i in installs),
        "tenant_installs": installs,
        "published_by_you": entry.pop("published_by_tenant") == tenant_id,
    }
    return entry


def _update_available(installable: str | None, versions: list[str | None]) -> bool:
    """Whether a version newer than one of ``versions`` can be installed (not withdrawn)."""
    return installable is not None and any(newer(installable, v) for v in versions)


def default_setup_steps(entry: dict[str, Any]) -> list[str]:
    """Steps for an entry published without its own: what installing it takes here."""
    schema = (entry["manifest"] or {}).get("config_schema", {})
    required = [k for k in schema.get("required", []) if k in schema.get("properties", {})]
    props = schema.get("properties", {})
    secret = [k for k in required if isinstance(props[k], dict) and props[k].get("x-secret")]
    plain = [k for k in required if k not in secret]
    steps = [f"Install {entry['name']} from the marketplace"
             + (f" with its settings ({', '.join(plain)})" if plain else "")]  # fmt: skip
    if entry["auth_scheme"] == "oauth2":
        steps.append(f"Connect your {entry['name']} account (you are sent to sign in and consent)")
    elif secret:
        steps.append(f"Set the credentials: {', '.join(secret)}")
    if entry["setup_guide_url"]:
        steps.append(f"Follow the vendor's guide for anything to prepare on their side: "
                     f"{entry['setup_guide_url']}")  # fmt: skip
    steps.append("Wait for the first check to pass (status active)")
    return steps


def demo_entry(
    raw: dict[str, Any], found: catalog_definitions.CatalogDefinition | None = None,
    generic_url: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A platform catalog item (demo_catalog.json) as a marketplace_connectors row: from its
    definition when it has one (the manifest, the version, and with ``generic_url`` where the
    generic connector runs it), else the brochure the JSON describes."""
    if found is not None:
        manifest = {**found.manifest, "display_name": raw["name"]}
        auth = dict(manifest["auth"])
        version = found.definition.version
        endpoint = found.endpoint(generic_url) if generic_url else None
    else:
        auth = {"scheme": raw["auth_scheme"], "scopes": raw["scopes"]}
        if raw["auth_scheme"] == "oauth2":
            auth |= {"authorize_url": raw["authorize_url"], "token_url": raw["token_url"]}
        manifest = {
            "name": raw["slug"],
            "display_name": raw["name"],
            "version": DEMO_VERSION,
            "auth": auth,
            "config_schema": raw["config_schema"],
            "streams": [],
            "actions": [],
        }
        version, endpoint = DEMO_VERSION, None
    return {
        "slug": raw["slug"],
        "name": raw["name"],
        "description": raw["description"],
        "service_identifier": raw["slug"],
        "version": version,
        "logo_url": raw["logo_url"],
        "category": raw["category"],
        "vendor": raw["vendor"],
        "auth_scheme": auth["scheme"],
        "default_auth_config": {k: v for k, v in auth.items() if k != "scheme"},
        "available_scopes": list(auth.get("scopes", [])),
        "setup_guide_url": raw["setup_guide_url"],
        "is_featured": raw["is_featured"],
        "manifest": manifest,
        "endpoint_url": endpoint,
        "allow_multiple": raw["allow_multiple"],
        "verification": found.level if found is not None else None,
        "verification_note": found.note
        if found is not None
        else catalog_definitions.note_of(raw["slug"]),
    }


class CatalogLoad(NamedTuple):
    loaded: int
    skipped: dict[str, str]  # slug -> why: a tenant's entry holds it (never taken over)


async def load_demo_catalog(
    conn: asyncpg.Connection, path: Path = DEMO_CATALOG, *, generic_url: str | None = None,
    definitions: Path = catalog_definitions.DEFINITIONS,
) -> CatalogLoad:  # fmt: skip
    """Insert or refresh the platform's catalog, skipping what tenants' entries hold. An entry
    with a definition keeps its text by digest (for the generic connector to fetch) and, with
    ``generic_url``, points at the generic connector serving that text."""
    entries = json.loads(path.read_text())  # noqa: ASYNC240 - small file, CLI only
    skipped = {}
    for raw in entries:
        found = catalog_definitions.of(raw["slug"], definitions)
        if found is not None:
            await conn.execute(
                "INSERT INTO marketplace_definitions (digest, name, version, body)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (digest) DO NOTHING",
                found.definition.digest, found.definition.name, found.definition.version,
                found.text,
            )  # fmt: skip
        if reason := await repository.upsert(conn, demo_entry(raw, found, generic_url)):
            skipped[raw["slug"]] = reason
    return CatalogLoad(len(entries) - len(skipped), skipped)


async def register_deployed(
    conn: asyncpg.Connection,
    *,
    manifest: dict[str, Any],
    endpoint_url: str,
    category: str,
    vendor: str,
    logo_url: str | None = None,
    setup_guide_url: str | None = None,
) -> str | None:
    """Put a running connector (its contract manifest and where it listens) in the platform's
    catalog; returns why it was skipped (a tenant's entry holds its slug or name), or None.

    Used by ``seedos up`` for the example connector; connector authors publish through the
    marketplace's publish endpoint."""
    auth = dict(manifest["auth"])
    entry = {
        "slug": manifest["name"],
        "name": manifest.get("display_name") or manifest["name"],
        "description": manifest.get("description") or None,
        "service_identifier": manifest["name"],
        "version": manifest["version"],
        "logo_url": logo_url,
        "category": category,
        "vendor": vendor,
        "auth_scheme": auth["scheme"],
        "default_auth_config": {k: v for k, v in auth.items() if k != "scheme"},
        "available_scopes": list(auth.get("scopes", [])),
        "setup_guide_url": setup_guide_url,
        "is_featured": False,
        "manifest": manifest,
        "endpoint_url": endpoint_url,
        "allow_multiple": True,
    }
    return await repository.upsert(conn, entry)
