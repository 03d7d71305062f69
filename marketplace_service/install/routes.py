from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from common import idempotency
from common.errors import PROBLEM_JSON, PROBLEM_RESPONSES
from common.internal_auth import CurrentPrincipal, requires
from common.roles import Permission
from marketplace_service.install.service import Installer

router = APIRouter(
    prefix="/api/v1/marketplace",
    tags=["marketplace"],
    dependencies=[requires(Permission.write)],
    responses=PROBLEM_RESPONSES,
)
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$",
           description="Optional: a repeat with the same key and body gets the first answer"),
]  # fmt: skip


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


def _respond(answer: idempotency.Answer) -> Response:
    if answer.status == 204:
        return Response(status_code=204, headers=_replayed(answer))
    media = PROBLEM_JSON if answer.status >= 400 else "application/json"
    return JSONResponse(answer.body, status_code=answer.status, media_type=media,
                        headers=_replayed(answer))  # fmt: skip


def _replayed(answer: idempotency.Answer) -> dict[str, str]:
    return {"Idempotent-Replayed": "true"} if answer.replayed else {}


async def _once(request: Request, principal: Any, scope: str, key: str | None, body: dict,
                operation: Any) -> idempotency.Answer:  # fmt: skip
    if key is None:
        return await operation()
    return await idempotency.run_once(
        request.app.state.db, tenant_id=principal.tenant_id, scope=scope, key=key,
        request_hash=idempotency.fingerprint(scope, body), operation=operation,
    )  # fmt: skip


@router.post("/install", status_code=201, responses={409: {"description": "Already installed"}})
async def install(
    body: InstallIn, request: Request, principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> Response:  # fmt: skip
    """Install a catalog connector for the caller's tenant. connector_service checks the config
    against the connector's schema, the scopes and the single-instance rule; its answer comes
    back unchanged (201 with the install, 422 listing every problem, or 409). With an
    Idempotency-Key a repeat gets the first answer (``Idempotent-Replayed: true``)."""
    installer: Installer = request.app.state.installer
    payload = body.model_dump(exclude_none=True)
    answer = await _once(request, principal, "marketplace.install", idempotency_key, payload,
                         lambda: installer.install(principal, payload))  # fmt: skip
    return _respond(answer)


@router.post("/uninstall", status_code=204)
async def uninstall(
    body: UninstallIn, request: Request, principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> Response:  # fmt: skip
    """Uninstall: connector_service revokes OAuth tokens, erases the credentials and the sync
    state (404 when the install is not the tenant's)."""
    installer: Installer = request.app.state.installer
    answer = await _once(request, principal, "marketplace.uninstall", idempotency_key,
                         body.model_dump(mode="json"),
                         lambda: installer.uninstall(principal, body.integration_id))  # fmt: skip
    return _respond(answer)
