"""``/api/v1/admin/tenants``: platform operators create, list, suspend and resume tenants."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from common.db import Db, ReadDb
from common.errors import PROBLEM_RESPONSES
from common.pagination import DEFAULT_LIMIT, CursorParam, Limit
from gateway.admin import service
from gateway.admin.schemas import (
    AdminTenant,
    AdminTenantCreate,
    AdminTenantPage,
    Status,
    Suspension,
)
from gateway.deps import Authenticated, Operator

router = APIRouter(prefix="/api/v1/admin/tenants", tags=["admin"], responses=PROBLEM_RESPONSES)
Slug = Annotated[str, Path(max_length=63)]


@router.get("", response_model=AdminTenantPage)
async def list_tenants(
    db: ReadDb,
    operator: Operator,
    status: Annotated[Status | None, Query(description="Only active or suspended ones")] = None,
    cursor: CursorParam = None,
    limit: Limit = DEFAULT_LIMIT,
) -> dict:
    """Every tenant on the platform, in slug order (operators)."""
    return await service.list_tenants(db, status=status, cursor=cursor, limit=limit)


@router.post("", response_model=AdminTenant, status_code=201)
async def create_tenant(body: AdminTenantCreate, db: Db, operator: Operator) -> dict:
    """A new tenant with no members yet (operators)."""
    return await service.create_tenant(
        db, slug=body.slug, name=body.name, industry=body.industry, size=body.size,
        actor=operator.subject,
    )  # fmt: skip


@router.get("/{slug}", response_model=AdminTenant)
async def get_tenant(slug: Slug, db: ReadDb, operator: Operator) -> dict:
    return await service.get_tenant(db, slug)


# Suspend and resume commit themselves: this replica's credential cache is cleared once the
# change is committed, or a lookup in between could cache the old verdict.
@router.post("/{slug}/suspend", response_model=AdminTenant)
async def suspend_tenant(
    slug: Slug, body: Suspension, db: ReadDb, operator: Operator, auth: Authenticated
) -> dict:
    """Refuse the tenant's requests (403 `tenant_suspended`) and pause its scheduled syncs.
    Suspending a suspended tenant changes nothing."""
    async with db.transaction():
        tenant, changed = await service.suspend(
            db, slug, reason=body.reason, actor=operator.subject, request_id=operator.request_id
        )
    if changed:
        auth.forget()  # this replica refuses at once; others within their cache time
    return tenant


@router.post("/{slug}/resume", response_model=AdminTenant)
async def resume_tenant(slug: Slug, db: ReadDb, operator: Operator, auth: Authenticated) -> dict:
    """Lift a suspension. Resuming an active tenant changes nothing."""
    async with db.transaction():
        tenant, changed = await service.resume(
            db, slug, actor=operator.subject, request_id=operator.request_id
        )
    if changed:
        auth.forget()
    return tenant
