from __future__ import annotations

import uuid

from fastapi import APIRouter
from pydantic import BaseModel

from common.db import ReadDb
from common.errors import PROBLEM_RESPONSES
from common.roles import GRANTS, Role
from gateway.deps import CurrentPrincipal
from gateway.tenants import service as tenants

router = APIRouter(prefix="/api/v1", tags=["me"], responses=PROBLEM_RESPONSES)


class TenantOut(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    industry: str | None
    size: int | None


class MeOut(BaseModel):
    subject: str
    role: Role
    permissions: list[str]
    auth_method: str
    tenant: TenantOut


@router.get("/me", response_model=MeOut)
async def me(principal: CurrentPrincipal, db: ReadDb) -> dict:
    """Who the credentials belong to: subject, role, what it may do, and the tenant."""
    tenant = await tenants.get(db, principal.tenant_id)
    role = Role(principal.role)
    return {
        "subject": principal.subject,
        "role": role,
        "permissions": sorted(p.value for p in GRANTS[role]),
        "auth_method": principal.subject.partition(":")[0],
        "tenant": tenant,
    }
