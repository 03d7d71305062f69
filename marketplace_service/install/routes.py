from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from common import idempotency
from common.errors import PROBLEM_RESPONSES
from common.internal_auth import CurrentPrincipal, requires
from common.roles import Permission
from marketplace_service.install.service import Installer

router = APIRouter(
    prefix="/api/v1/marketplace",
    tags=["marketplace"],
    dependencies=[requires(Permission.write)],
    responses=PROBLEM_RESPONSES,
)


class InstallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connector: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9-]+$",
                           description="Catalog entry slug")  # fmt: skip
    connector_name: str | None = Field(None, min_length=1, max_length=200)
    config: dict[str, Any] = Field(default_factory=dict)
    credentials: dict[str, str] = Field(default_factory=dict)
    scopes: list[str] | None = None


class UninstallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    integration_id: uuid.UUID


@router.post("/install", status_code=201, responses={409: {"description": "Already installed"}})
async def install(
    body: InstallIn, request: Request, principal: CurrentPrincipal,
    idempotency_key: idempotency.KeyHeader = None,
) -> Response:  # fmt: skip
    """Install a catalog connector for the caller's tenant. connector_service checks the config
    against the connector's schema, the scopes and the single-instance rule; its answer comes
    back unchanged (201 with the install, 422 listing every problem, or 409). With an
    Idempotency-Key a repeat gets the first answer (``Idempotent-Replayed: true``)."""
    installer: Installer = request.app.state.installer
    payload = body.model_dump(exclude_none=True)
    answer = await idempotency.once(
        request, tenant_id=principal.tenant_id, scope="marketplace.install",
        key=idempotency_key, body=payload,
        operation=lambda: installer.install(principal, payload, idempotency_key=idempotency_key),
    )  # fmt: skip
    return idempotency.respond(answer)


@router.post("/uninstall", status_code=204)
async def uninstall(
    body: UninstallIn, request: Request, principal: CurrentPrincipal,
    idempotency_key: idempotency.KeyHeader = None,
) -> Response:  # fmt: skip
    """Uninstall: connector_service revokes OAuth tokens, erases the credentials and the sync
    state (404 when the install is not the tenant's)."""
    installer: Installer = request.app.state.installer
    answer = await idempotency.once(
        request, tenant_id=principal.tenant_id, scope="marketplace.uninstall",
        key=idempotency_key, body=body.model_dump(mode="json"),
        operation=lambda: installer.uninstall(principal, body.integration_id),
    )  # fmt: skip
    return idempotency.respond(answer)
