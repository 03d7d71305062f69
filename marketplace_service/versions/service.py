"""Published versions of a catalog entry: each immutable and addressable; a publisher may
withdraw one of their own (installs on it then show ``update_required`` with the reason, and
nothing is sent to its endpoint any more), which never moves a running install anywhere."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import asyncpg

from common import audit
from common.errors import Conflict, NotFound
from common.internal_auth import Principal
from marketplace_service.catalog.service import CatalogEntryNotFound
from marketplace_service.publishing.service import NotEntryPublisher
from marketplace_service.versions import repository


class VersionNotFound(NotFound):
    code, title = "version_not_found", "No such version"


class AlreadyWithdrawn(Conflict):
    code, title = "already_withdrawn", "This version is already withdrawn"


def _shown(row: asyncpg.Record) -> dict[str, Any]:
    """A version as tenants see it: the manifest, and the endpoint's host (not its address)."""
    item = dict(row)
    endpoint = item.pop("endpoint_url")
    item["endpoint_host"] = urlsplit(endpoint).hostname if endpoint else None
    item["deployed"] = endpoint is not None
    return item


async def _entry(conn: asyncpg.Connection, slug: str) -> asyncpg.Record:
    found = await repository.entry(conn, slug)
    if found is None:
        raise CatalogEntryNotFound(f"no connector '{slug}' in the catalog")
    return found


async def list_versions(conn: asyncpg.Connection, slug: str) -> list[dict[str, Any]]:
    entry = await _entry(conn, slug)
    return [_shown(r) for r in await repository.list_versions(conn, entry["id"])]


async def get_version(conn: asyncpg.Connection, slug: str, version: str) -> dict[str, Any]:
    entry = await _entry(conn, slug)
    row = await repository.get_version(conn, entry["id"], version)
    if row is None:
        raise VersionNotFound(f"'{slug}' has no version {version!r}")
    return _shown(row)


async def withdraw(
    conn: asyncpg.Connection, slug: str, version: str, *, reason: str, principal: Principal
) -> dict[str, Any]:
    """Mark one of the caller's tenant's published versions withdrawn, with the reason
    installs on it will show. 403 for another's entry, 409 when already withdrawn."""
    entry = await _entry(conn, slug)
    if entry["published_by_tenant"] != principal.tenant_id:
        raise NotEntryPublisher(
            f"'{slug}' was published by another tenant" if entry["published_by_tenant"]
            else f"'{slug}' is part of the platform's catalog"
        )  # fmt: skip
    row = await repository.get_version(conn, entry["id"], version, lock=True)
    if row is None:
        raise VersionNotFound(f"'{slug}' has no version {version!r}")
    if row["withdrawn_at"] is not None:
        raise AlreadyWithdrawn(f"{slug} {version} was withdrawn on {row['withdrawn_at']:%Y-%m-%d}")
    await repository.withdraw(conn, entry["id"], version, reason=reason)
    installs = await repository.installs_on(conn, entry["id"], version)
    await audit.record(
        conn, tenant_id=principal.tenant_id, actor=principal.subject,
        action="marketplace.version_withdrawn", target=f"marketplace_connector:{entry['id']}",
        payload={"slug": slug, "version": version, "reason": reason, "installs": installs},
        request_id=principal.request_id,
    )  # fmt: skip
    return {**await get_version(conn, slug, version), "installs": installs}
