"""Demo data: the demo tenant and the real-world connector catalog."""

from __future__ import annotations

from typing import Any

import asyncpg
import typer

from common.errors import NotFound
from gateway.tenants import service as tenants
from marketplace_service.catalog.service import load_demo_catalog
from marketplace_service.settings import MarketplaceSettings

DEMO_TENANT = {"slug": "demo", "name": "Demo Company", "industry": "software", "size": 50}


async def seed(conn: asyncpg.Connection, *, generic_url: str | None = None) -> dict[str, Any]:
    """Idempotent: creates what is missing, refreshes the catalog (``catalog_skipped``: the
    entries left alone because a tenant's entry holds their slug or name). Entries run from a
    definition point at the generic connector at ``generic_url`` (default: the marketplace's
    setting, SEEDOS_MARKETPLACE_GENERIC_CONNECTOR_URL)."""
    if generic_url is None:
        generic_url = MarketplaceSettings().generic_connector_url
    async with conn.transaction():
        try:
            tenant = await tenants.get_by_slug(conn, DEMO_TENANT["slug"])
        except NotFound:
            tenant = await tenants.create(conn, **DEMO_TENANT, actor="system:seed-demo")
        catalog = await load_demo_catalog(conn, generic_url=generic_url)
    return {"tenant": tenant, "catalog_entries": catalog.loaded, "catalog_skipped": catalog.skipped}


def warn_skipped(skipped: dict[str, str]) -> None:
    """Tell the operator which platform catalog entries were left alone, and why."""
    for slug, reason in skipped.items():
        typer.secho(f"warning: catalog entry '{slug}' not loaded: {reason}", fg="yellow", err=True)
