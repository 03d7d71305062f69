from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, status

from common.db import Db, ReadDb
from common.errors import PROBLEM_RESPONSES
from common.roles import Permission
from gateway.api_keys import service
from gateway.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyOut
from gateway.deps import Authenticated, CurrentPrincipal, require

router = APIRouter(prefix="/api/v1/api-keys", tags=["api-keys"], responses=PROBLEM_RESPONSES)


@router.get("", response_model=ApiKeyList, dependencies=[require(Permission.manage)])
async def list_api_keys(
    db: ReadDb,
    principal: CurrentPrincipal,
    include_revoked: bool = Query(False, description="Also list revoked keys"),
) -> dict:
    keys = await service.list_keys(
        db, tenant_id=principal.tenant_id, include_revoked=include_revoked
    )
    return {"items": keys, "next_cursor": None}


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
        creator_role=principal.role,
        expires_at=body.expires_at,
        request_id=principal.request_id,
    )


@router.delete(
    "/{key_id}",
    response_model=ApiKeyOut,
    dependencies=[require(Permission.manage)],
)
async def revoke_api_key(
    key_id: uuid.UUID, db: ReadDb, principal: CurrentPrincipal, auth: Authenticated
) -> dict:
    # The one route that commits itself: the key cache must be cleared after the revocation is
    # committed, or a lookup in between could cache the key as still valid.
    async with db.transaction():
        revoked = await service.revoke_with_descendants(
            db,
            key_id,
            tenant_id=principal.tenant_id,
            actor=principal.subject,
            request_id=principal.request_id,
        )
    auth.forget()  # this replica refuses the key from now on; others within their cache TTL
    return revoked
