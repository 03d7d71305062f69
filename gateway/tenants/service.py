from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg

from common import audit
from common.errors import Conflict, InvalidRequest, NotFound
from gateway.tenants import repository

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def looks_like_id(slug: str) -> bool:
    """Whether a slug has the form of a tenant id (a UUID): such slugs are refused."""
    try:
        uuid.UUID(slug)
    except ValueError:
        return False
    return True


class TenantNotFound(NotFound):
    code, title = "tenant_not_found", "Tenant not found"


async def create(
    conn: asyncpg.Connection,
    *,
    slug: str,
    name: str,
    industry: str | None = None,
    size: int | None = None,
    actor: str = "system:cli",
) -> dict[str, Any]:
    if not SLUG.match(slug):
        raise InvalidRequest(
            "a slug is 1-63 lowercase letters, digits and inner hyphens", code="invalid_slug"
        )
    if looks_like_id(slug):  # a tenant named by id or by slug must be one tenant (bearer JWTs)
        raise InvalidRequest("a slug may not have the form of a tenant id", code="invalid_slug")
    if not name.strip():
        raise InvalidRequest("a tenant needs a name", code="invalid_name")
    if size is not None and size <= 0:
        raise InvalidRequest("size is a positive number of employees", code="invalid_size")
    if industry is not None and not 1 <= len(industry) <= 60:
        # the same rule as the tenants_industry_length check (and PATCH /api/v1/tenant)
        raise InvalidRequest("an industry is 1-60 characters", code="invalid_industry")
    row = await repository.insert(conn, slug=slug, name=name.strip(), industry=industry, size=size)
    if row is None:
        raise Conflict(f"a tenant with slug '{slug}' exists", code="tenant_exists")
    tenant = dict(row)
    await audit.record(
        conn,
        tenant_id=tenant["id"],
        actor=actor,
        action="tenant.created",
        target=f"tenant:{tenant['id']}",
        payload={"slug": slug},
    )
    return tenant


async def get_by_slug(conn: asyncpg.Connection, slug: str) -> dict[str, Any]:
    row = await repository.get_by_slug(conn, slug)
    if row is None:
        raise TenantNotFound(f"no tenant with slug '{slug}'")
    return dict(row)


async def get(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> dict[str, Any]:
    row = await repository.get(conn, tenant_id)
    if row is None:
        raise TenantNotFound()
    return dict(row)


async def update_profile(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    *,
    changes: dict[str, Any],
    actor: str,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Change the profile (name, industry, size, description); audited with what changed.

    Values arrive validated by the route's schema; ``None`` clears an optional field. Setting a
    field to the value it has changes nothing and records nothing."""
    if not changes:
        raise InvalidRequest(
            "give at least one of name, industry, size, description", code="invalid_input"
        )
    if "name" in changes and changes["name"] is None:
        raise InvalidRequest("a tenant's name cannot be cleared", code="invalid_name")
    before = await get(conn, tenant_id)
    changed = {k: v for k, v in changes.items() if before.get(k) != v}
    if not changed:
        return before
    row = await repository.update_profile(conn, tenant_id, changed)
    if row is None:
        raise TenantNotFound()
    await audit.record(
        conn,
        tenant_id=tenant_id,
        actor=actor,
        action="tenant.updated",
        target=f"tenant:{tenant_id}",
        # the description is the tenant's own prose: say that it changed, not what it says
        payload={
            "fields": sorted(changed),
            **{k: changed[k] for k in ("name", "industry", "size") if k in changed},
        },
        request_id=request_id,
    )
    return dict(row)
