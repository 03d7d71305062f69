"""``/api/v1/admin/tenants``: platform operators create, list, suspend and resume tenants."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from common.db import Pool, ReadDb
from common.errors import PROBLEM_RESPONSES
from common.pagination import DEFAULT_LIMIT, CursorParam, Limit
from gateway.admin import service
from gateway.admin.schemas import (
    AdminTenant,
    AdminTenantCreate,
    AdminTenantCreated,
    AdminTenantPage,
    Status,
    Suspension,
)
from gateway.deps import Authenticated, Operator, Settings
from gateway.invitations import mailer

router = APIRouter(prefix="/api/v1/admin/tenants", tags=["admin"], responses=PROBLEM_RESPONSES)
Slug = Annotated[str, Path(max_length=63)]


@router.get("", response_model=AdminTenantPage)
async def list_tenants(
    operator: Operator,  # before the connection: see tests/common/test_apps.py
    db: ReadDb,
    status: Annotated[Status | None, Query(description="Only active or suspended ones")] = None,
    cursor: CursorParam = None,
    limit: Limit = DEFAULT_LIMIT,
) -> dict:
    """Every tenant on the platform, in slug order (operators)."""
    return await service.list_tenants(db, status=status, cursor=cursor, limit=limit)


@router.post("", response_model=AdminTenantCreated, status_code=201)
async def create_tenant(
    body: AdminTenantCreate, pool: Pool, operator: Operator, settings: Settings
) -> dict:
    """A new tenant with no members yet (operators). With `admin_email`, that address is
    invited as its admin: the answer holds the invitation's link (shown only here), emailed
    too when an SMTP server is configured."""
    # committed, and the connection back in the pool, before the email is sent
    async with pool.connection() as conn, conn.transaction():
        tenant, created = await service.create_tenant(
            conn, slug=body.slug, name=body.name, industry=body.industry, size=body.size,
            actor=operator.subject, admin_email=body.admin_email,
            invitation_days=settings.invitation_days, public_url=settings.public_url,
            request_id=operator.request_id,
        )  # fmt: skip
    if created is None:
        return {**tenant, "invitation": None}
    invitation = created.invitation
    emailed = await mailer.send_created(settings.smtp, created)
    return {**tenant, "invitation": {**invitation, "link": created.link, "emailed": emailed}}


@router.get("/{slug}", response_model=AdminTenant)
async def get_tenant(slug: Slug, operator: Operator, db: ReadDb) -> dict:
    return await service.get_tenant(db, slug)


# Suspend and resume commit themselves: this replica's credential cache is cleared once the
# change is committed, or a lookup in between could cache the old verdict.
@router.post("/{slug}/suspend", response_model=AdminTenant)
async def suspend_tenant(
    slug: Slug, body: Suspension, operator: Operator, db: ReadDb, auth: Authenticated
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
async def resume_tenant(slug: Slug, operator: Operator, db: ReadDb, auth: Authenticated) -> dict:
    """Lift a suspension. Resuming an active tenant changes nothing."""
    async with db.transaction():
        tenant, changed = await service.resume(
            db, slug, actor=operator.subject, request_id=operator.request_id
        )
    if changed:
        auth.forget()
    return tenant
