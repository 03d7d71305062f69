from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg

from common.errors import NotFound
from common.pagination import decode_cursor, encode_cursor
from marketplace_service.catalog import repository

DEMO_CATALOG = Path(__file__).with_name("demo_catalog.json")
DEMO_VERSION = "1.0.0"


class CatalogEntryNotFound(NotFound):
    code, title = "connector_not_found", "Connector not found"


async def list_entries(
    conn: asyncpg.Connection,
    *,
    category: str | None,
    featured: bool | None,
    cursor: str | None,
    limit: int,
) -> dict[str, Any]:
    key = decode_cursor(cursor, parse=(str,))
    after = key[0] if key else None
    rows = await repository.list_entries(
        conn, category=category, featured=featured, after_name=after, limit=limit + 1
    )
    items = [dict(r) for r in rows[:limit]]
    next_cursor = encode_cursor([items[-1]["name"]]) if len(rows) > limit else None
    return {"items": items, "next_cursor": next_cursor}


async def get_entry(conn: asyncpg.Connection, slug: str) -> dict[str, Any]:
    row = await repository.get_by_slug(conn, slug)
    if row is None:
        raise CatalogEntryNotFound(f"no connector '{slug}' in the catalog")
    return dict(row)


def demo_entry(raw: dict[str, Any]) -> dict[str, Any]:
    """A demo catalog item (demo_catalog.json) as a marketplace_connectors row."""
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
    return {
        "slug": raw["slug"],
        "name": raw["name"],
        "description": raw["description"],
        "service_identifier": raw["slug"],
        "version": DEMO_VERSION,
        "logo_url": raw["logo_url"],
        "category": raw["category"],
        "vendor": raw["vendor"],
        "auth_scheme": raw["auth_scheme"],
        "default_auth_config": {k: v for k, v in auth.items() if k != "scheme"},
        "available_scopes": raw["scopes"],
        "setup_guide_url": raw["setup_guide_url"],
        "is_featured": raw["is_featured"],
        "manifest": manifest,
        "allow_multiple": raw["allow_multiple"],
    }


async def load_demo_catalog(conn: asyncpg.Connection, path: Path = DEMO_CATALOG) -> int:
    entries = json.loads(path.read_text())  # noqa: ASYNC240 - small file, CLI only
    for raw in entries:
        await repository.upsert(conn, demo_entry(raw))
    return len(entries)


async def register_deployed(
    conn: asyncpg.Connection,
    *,
    manifest: dict[str, Any],
    endpoint_url: str,
    category: str,
    vendor: str,
    logo_url: str | None = None,
    setup_guide_url: str | None = None,
) -> dict[str, Any]:
    """Put a running connector (its contract manifest and where it listens) in the catalog.

    Used by ``seedos up`` for the example connector; publishing by connector authors, with
    version checks, arrives with the marketplace's publish endpoint."""
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
    await repository.upsert(conn, entry)
    return entry
