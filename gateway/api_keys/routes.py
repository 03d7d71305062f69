from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, status

from common.db import Db, ReadDb
from common.roles import Permission
from gateway.api_keys import service
from gateway.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from gateway.deps import Authenticated, CurrentPrincipal, require

router = APIRouter(prefix="/api/v1/api-keys", tags=["api-keys"])


@router.get("", response_model=list[ApiKeyOut], dependencies=[require(Permission.manage)])
async def list_api_keys(
    db: ReadDb,
    principal: CurrentPrincipal,
    include_revoked: bool = Query(False, description="Also list revoked keys"),
) -> list[dict]:
    return await service.list_keys(
        db, tenant_id=principal.tenant_id, include_revoked=include_revoked
    )


@router.post(
    "",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    dependencies=[require(Permission.manage)],
)
async def create_api_key(body: ApiKeyCreate, db: Db, principal: CurrentPrincipal) -> dict:
    return await service.create(
        db,
        tenant_id=principal.tenant_id,
        name=body.name,
        role=body.role,
        created_by=principal.subject,
        expires_at=body.expires_at,
        request_id=principal.request_id,
    )


@router.delete(
    "/{key_id}",
    response_model=ApiKeyOut,
    dependencies=[require(Permission.manage)],
)
async def revoke_api_key(
    key_id: uuid.UUID, db: Db, principal: CurrentPrincipal, auth: Authenticated
) -> dict:
    revoked = await service.revoke(
        db,
        key_id,
        tenant_id=principal.tenant_id,
        actor=principal.subject,
        request_id=principal.request_id,
    )
    auth.forget()  # this replica stops accepting the key now; others within the cache TTL
    return revoked
