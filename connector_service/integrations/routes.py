from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from common.crypto import KeyRing
from common.db import Db, ReadDb
from common.errors import PROBLEM_RESPONSES
from common.internal_auth import CurrentPrincipal, requires
from common.pagination import DEFAULT_LIMIT, CursorParam, Limit
from common.roles import Permission
from connector_service.integrations import service
from connector_service.integrations.schemas import (
    CredentialsIn,
    CredentialsOut,
    IntegrationCreate,
    IntegrationOut,
    IntegrationPage,
    IntegrationUpdate,
    Status,
)

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


async def _keyring(request: Request) -> KeyRing:
    return request.app.state.keyring


Ring = Annotated[KeyRing, Depends(_keyring)]
Writer = [requires(Permission.write)]


@router.post("", response_model=IntegrationOut, status_code=201, dependencies=Writer)
async def create_integration(
    body: IntegrationCreate, db: Db, principal: CurrentPrincipal, ring: Ring
) -> dict:
    """Install a catalog connector with its config and credentials. A 422 lists every problem
    with the config, credentials and scopes; a 409 means a single-instance connector is
    installed already. Nothing is stored unless everything is valid."""
    return await service.create(
        db, ring, tenant_id=principal.tenant_id, actor=principal.subject, slug=body.connector,
        connector_name=body.connector_name, config=body.config, credentials=body.credentials,
        scopes=body.scopes, request_id=principal.request_id,
    )  # fmt: skip


@router.patch("/{integration_id}", response_model=IntegrationOut, dependencies=Writer)
async def update_integration(
    integration_id: uuid.UUID, body: IntegrationUpdate, db: Db, principal: CurrentPrincipal
) -> dict:
    return await service.update(
        db, tenant_id=principal.tenant_id, integration_id=integration_id, actor=principal.subject,
        config=body.config, connector_name=body.connector_name, request_id=principal.request_id,
    )  # fmt: skip


@router.post("/{integration_id}/disable", response_model=IntegrationOut, dependencies=Writer)
async def disable_integration(
    integration_id: uuid.UUID, db: Db, principal: CurrentPrincipal
) -> dict:
    return await service.set_enabled(
        db, tenant_id=principal.tenant_id, integration_id=integration_id,
        actor=principal.subject, enabled=False, request_id=principal.request_id,
    )  # fmt: skip


@router.post("/{integration_id}/enable", response_model=IntegrationOut, dependencies=Writer)
async def enable_integration(
    integration_id: uuid.UUID, db: Db, principal: CurrentPrincipal
) -> dict:
    return await service.set_enabled(
        db, tenant_id=principal.tenant_id, integration_id=integration_id,
        actor=principal.subject, enabled=True, request_id=principal.request_id,
    )  # fmt: skip


@router.delete("/{integration_id}", status_code=204, dependencies=Writer)
async def delete_integration(
    integration_id: uuid.UUID, db: Db, principal: CurrentPrincipal, ring: Ring, request: Request
) -> Response:
    """Uninstall: OAuth tokens are revoked at the provider where it supports that, the install
    and its credentials are erased, and the removal audited."""
    await service.delete(
        db, ring, tenant_id=principal.tenant_id, integration_id=integration_id,
        actor=principal.subject, request_id=principal.request_id, oauth=request.app.state.oauth,
    )  # fmt: skip
    return Response(status_code=204)


@router.get("/{integration_id}/credentials", response_model=CredentialsOut)
async def get_credentials(
    integration_id: uuid.UUID, db: ReadDb, principal: CurrentPrincipal
) -> dict:
    """Which secret fields are set. Values never leave the service."""
    fields = await service.credential_fields(
        db, tenant_id=principal.tenant_id, integration_id=integration_id
    )
    return {"fields_set": fields}


@router.put("/{integration_id}/credentials", response_model=CredentialsOut, dependencies=Writer)
async def put_credentials(
    integration_id: uuid.UUID, body: CredentialsIn, db: Db, principal: CurrentPrincipal, ring: Ring
) -> dict:
    """Set (or replace) secret fields: API keys, passwords. Stored encrypted."""
    fields = await service.put_credentials(
        db, ring, tenant_id=principal.tenant_id, integration_id=integration_id,
        actor=principal.subject, credentials=body.credentials, request_id=principal.request_id,
    )  # fmt: skip
    return {"fields_set": fields}
