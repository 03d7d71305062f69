from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from common.db import Db, ReadDb
from common.errors import PROBLEM_RESPONSES
from common.roles import Permission
from gateway.deps import CurrentPrincipal, require
from gateway.domains import service
from gateway.domains.schemas import DomainCreate, DomainList, DomainOut

router = APIRouter(prefix="/api/v1/tenant/domains", tags=["tenant"], responses=PROBLEM_RESPONSES)
DomainParam = Annotated[
    str, Path(min_length=1, max_length=300, description="The domain, e.g. `example.com`")
]


@router.get("", response_model=DomainList, dependencies=[require(Permission.read)])
async def list_domains(db: ReadDb, principal: CurrentPrincipal) -> dict:
    """The email domains whose people join the tenant as viewers when they sign in with a
    verified address of one (every member may read them)."""
    return {"items": await service.list_domains(db, tenant_id=principal.tenant_id)}


@router.post(
    "",
    response_model=DomainOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[require(Permission.manage)],
    responses={409: {"description": "`domain_taken` (by this or another tenant),"
                                    " `too_many_domains`"}},
)  # fmt: skip
async def add_domain(body: DomainCreate, db: Db, principal: CurrentPrincipal) -> dict:
    """Register an email domain (admins): from now on people who sign in with a verified email
    of it join as viewers. No DNS proof is asked, so a domain belongs to one tenant at most
    (409 `domain_taken`), and public webmail domains are refused (422 `public_email_domain`).
    Audited as `domain.added`."""
    return await service.add(
        db, tenant_id=principal.tenant_id, domain=body.domain, actor=principal.subject,
        request_id=principal.request_id,
    )  # fmt: skip


@router.delete("/{domain}", response_model=DomainOut, dependencies=[require(Permission.manage)])
async def remove_domain(domain: DomainParam, db: Db, principal: CurrentPrincipal) -> dict:
    """Unregister an email domain (admins); people who joined through it stay members.
    Audited as `domain.removed`."""
    return await service.remove(
        db, tenant_id=principal.tenant_id, domain=domain, actor=principal.subject,
        request_id=principal.request_id,
    )  # fmt: skip
