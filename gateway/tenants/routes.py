from __future__ import annotations

from fastapi import APIRouter

from common.db import Db, ReadDb
from common.errors import PROBLEM_RESPONSES
from common.roles import Permission
from gateway.deps import CurrentPrincipal, require
from gateway.tenants import service
from gateway.tenants.schemas import TenantProfile, TenantProfileUpdate

router = APIRouter(prefix="/api/v1/tenant", tags=["tenant"], responses=PROBLEM_RESPONSES)


@router.get("", response_model=TenantProfile)
async def get_tenant(principal: CurrentPrincipal, db: ReadDb) -> dict:
    """The caller's tenant and its profile (what recommendations are based on)."""
    return await service.get(db, principal.tenant_id)


@router.patch("", response_model=TenantProfile, dependencies=[require(Permission.manage)])
async def update_tenant(body: TenantProfileUpdate, db: Db, principal: CurrentPrincipal) -> dict:
    """Change the name, industry, size or description (admins)."""
    return await service.update_profile(
        db,
        principal.tenant_id,
        changes=body.changes(),
        actor=principal.subject,
        request_id=principal.request_id,
    )
