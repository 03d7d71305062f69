"""Publishing a connector: a new entry, or a newer semantic version of one's own entry."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

import asyncpg

from common import audit
from common.endpoints import EndpointNotAllowed, EndpointPolicy
from common.errors import Conflict, Forbidden, InvalidRequest
from common.internal_auth import Principal
from common.versions import newer
from marketplace_service.publishing import manifest as manifest_rules
from marketplace_service.publishing import repository
from marketplace_service.publishing.schemas import PublishIn

T = TypeVar("T")


class InvalidManifest(InvalidRequest):
    code, title = "invalid_manifest", "The manifest cannot be published"


class VersionNotNewer(Conflict):
    code, title = "version_not_newer", "The version is not newer"


class NotEntryPublisher(Forbidden):
    code, title = "not_entry_publisher", "Published by someone else"


class NameTaken(Conflict):
    code, title = "connector_name_taken", "Another entry has this name"


# What the suite itself calls, with credentials: the connector (under the connector rule), and
# the OAuth server's token and revocation endpoints (under the egress rule; not authorize_url,
# which only people's browsers visit).
OAUTH_URLS = ("token_url", "revoke_url")


async def check(body: PublishIn, *, connector: EndpointPolicy, egress: EndpointPolicy) -> None:
    """What needs no database: the manifest (every problem at once), then every URL the suite
    will call under the rule connector_service applies when it connects: the endpoint URL under
    ``connector`` (and with no query or fragment: the contract fixes the paths called), the
    OAuth URLs under ``egress``."""
    found = manifest_rules.problems(body.manifest)
    if found:
        raise InvalidManifest(f"{len(found)} problem(s) with this manifest", errors=found)
    auth = body.manifest["auth"]
    urls = [("/endpoint_url", body.endpoint_url, connector, True)] + [
        (f"/manifest/auth/{key}", auth[key], egress, False) for key in OAUTH_URLS if key in auth
    ]
    refused = []
    for path, url, policy, fixed_path in urls:
        try:
            await policy.check(url, fixed_path=fixed_path)
        except EndpointNotAllowed as exc:
            refused.append({"path": path, "message": exc.detail or exc.title})
    if refused:
        detail = "; ".join(f"{e['path'][1:]}: {e['message']}" for e in refused)
        raise EndpointNotAllowed(detail, errors=refused)


async def publish(
    conn: asyncpg.Connection, body: PublishIn, *, principal: Principal
) -> tuple[str, bool]:
    """Store the entry (after :func:`check`); returns its slug and whether it is new."""
    entry = _entry(body, tenant_id=principal.tenant_id)
    slug = entry["slug"]
    if holder := await repository.name_holder(conn, name=entry["name"], slug=slug):
        raise NameTaken(f"the catalog entry '{holder}' is already called {entry['name']!r}")
    current = await repository.lock_by_slug(conn, slug)
    if current is None:
        entry_id = await _unique(repository.insert(conn, entry), entry["name"])
        if entry_id is not None:
            await _audit(conn, principal, entry_id, slug=slug, version=entry["version"])
            return slug, True
        current = await repository.lock_by_slug(conn, slug)  # published meanwhile
        assert current is not None
    if current["published_by_tenant"] != principal.tenant_id:
        raise NotEntryPublisher(
            f"'{slug}' was published by another tenant" if current["published_by_tenant"]
            else f"'{slug}' is part of the platform's catalog"
        )  # fmt: skip
    if not newer(entry["version"], current["version"]):
        raise VersionNotNewer(
            f"'{slug}' is at version {current['version']}; publish a higher version than that",
            current_version=current["version"],
        )
    await _unique(repository.update(conn, current["id"], entry), entry["name"])
    await _audit(conn, principal, current["id"], slug=slug, version=entry["version"],
                 previous_version=current["version"])  # fmt: skip
    return slug, False


async def _unique(write: Awaitable[T], name: str) -> T:
    """A write that another publish may beat to a unique name (between the check and now)."""
    try:
        return await write
    except asyncpg.UniqueViolationError:
        raise NameTaken(f"another catalog entry is already called {name!r}") from None


def _entry(body: PublishIn, *, tenant_id: uuid.UUID) -> dict[str, Any]:
    manifest = body.manifest
    if (name := manifest_rules.display_name(manifest)) is not None:
        manifest = {**manifest, "display_name": name}
    auth = dict(manifest["auth"])
    return {
        "slug": manifest["name"],
        "name": name or manifest["name"],
        "description": manifest.get("description") or None,
        "version": manifest["version"],
        "logo_url": body.logo_url,
        "category": body.category,
        "vendor": body.vendor,
        "auth_scheme": auth["scheme"],
        "default_auth_config": {k: v for k, v in auth.items() if k != "scheme"},
        "available_scopes": list(auth.get("scopes", [])),
        "setup_guide_url": body.setup_guide_url,
        "manifest": manifest,
        "endpoint_url": body.endpoint_url,
        "setup_steps": body.setup_steps,
        "published_by_tenant": tenant_id,
    }


async def _audit(
    conn: asyncpg.Connection, principal: Principal, entry_id: uuid.UUID, **payload: Any
) -> None:
    await audit.record(
        conn,
        tenant_id=principal.tenant_id,
        actor=principal.subject,
        action="marketplace.connector_published",
        target=f"marketplace_connector:{entry_id}",
        payload=payload,
        request_id=principal.request_id,
    )
