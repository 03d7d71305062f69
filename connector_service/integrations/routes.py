from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from common.db import ReadDb
from common.errors import PROBLEM_RESPONSES
from common.internal_auth import CurrentPrincipal, requires
from common.pagination import DEFAULT_LIMIT, CursorParam, Limit
from common.roles import Permission
from connector_service.integrations import service
from connector_service.integrations.schemas import IntegrationOut, IntegrationPage, Status

router = APIRouter(
    prefix="/api/v1/integrations",
    tags=["integrations"],
    dependencies=[requires(Permission.read)],
    responses=PROBLEM_RESPONSES,
)


@router.get("", response_model=IntegrationPage)
async def list_integrations(
    db: ReadDb,
    principal: CurrentPrincipal,
    status: Status | None = None,
    service_name: Annotated[str | None, Query(alias="service", max_length=100)] = None,
    cursor: CursorParam = None,
    limit: Limit = DEFAULT_LIMIT,
) -> dict:
    """The tenant's installed connectors, oldest first, one page at a time."""
    return await service.list_integrations(
        db,
        tenant_id=principal.tenant_id,
        status=status.value if status else None,
        service_name=service_name,
        cursor=cursor,
        limit=limit,
    )


@router.get("/{integration_id}", response_model=IntegrationOut)
async def get_integration(
    integration_id: uuid.UUID, db: ReadDb, principal: CurrentPrincipal
) -> dict:
    return await service.get_integration(
        db, tenant_id=principal.tenant_id, integration_id=integration_id
    )
