"""Live sync routes: ``POST sync/ticket`` and the y-websocket endpoint ``WS sync/ws``.

A y-websocket client connects to ``serverUrl + '/' + room``: with serverUrl
``…/api/v1/integrations/{id}/sync`` and room ``ws`` that is this endpoint. Credentials are
checked before the connection is accepted, so a client without valid ones gets the handshake
refused (HTTP 403; close code 1008 to the application) and never any state: either the
internal token the gateway minted for the caller's API key, or ``?ticket=`` from
``POST sync/ticket`` (for browsers, which cannot set headers on a WebSocket)."""

from __future__ import annotations

import uuid
from datetime import datetime

import structlog
from fastapi import APIRouter, Request, WebSocket
from pydantic import BaseModel

from common.errors import PROBLEM_RESPONSES, SeedosError
from common.internal_auth import CurrentPrincipal, Principal, requires
from common.roles import Permission, allows
from connector_service.integrations import calls
from connector_service.sync import tickets
from connector_service.sync.connection import Connection
from connector_service.sync.hub import POLICY_VIOLATION
from connector_service.sync.routes import Installed

log = structlog.get_logger(component="connector_service.sync.ws")

router = APIRouter(
    prefix="/api/v1/integrations/{integration_id}", tags=["sync"], responses=PROBLEM_RESPONSES
)


class Ticket(BaseModel):
    ticket: str
    expires_at: datetime
    writable: bool


@router.post("/sync/ticket", dependencies=[requires(Permission.read)])
async def ticket(target: Installed, principal: CurrentPrincipal, request: Request) -> Ticket:
    """A single-use ticket for ``sync/ws?ticket=``, valid for 60 seconds, bound to the caller's
    tenant, subject and role and to this integration. A viewer's ticket reads only
    (``writable: false``): updates sent with it close the connection with 1008."""
    return Ticket(**await tickets.issue(request.app.state.db, principal, target.id))


@router.websocket("/sync/ws")
async def sync_ws(websocket: WebSocket, integration_id: uuid.UUID) -> None:
    """y-websocket sync of the integration's document (see README, "Live sync over
    WebSocket")."""
    app = websocket.app
    try:
        principal = await _authenticate(websocket, integration_id)
        principal.require(Permission.read)
        target = await calls.load_target(app.state.db, principal.tenant_id, integration_id)
    except SeedosError as exc:
        log.info("sync_ws_refused", integration_id=str(integration_id), code=exc.code)
        await websocket.close(POLICY_VIOLATION)  # before accepting: the handshake gets 403
        return
    await websocket.accept()
    connection = Connection(
        websocket, hub=app.state.sync_hub, store=app.state.sync_store, target=target,
        writable=allows(principal.role, Permission.write), sender=principal.subject,
    )  # fmt: skip
    await connection.serve()


async def _authenticate(websocket: WebSocket, integration_id: uuid.UUID) -> Principal:
    """The ticket's principal when there is one (the gateway forwards ticket connections with
    an anonymous token), else the caller of the internal token."""
    presented = websocket.query_params.get("ticket")
    if presented is not None:
        return await tickets.redeem(websocket.app.state.db, presented, integration_id)
    principal = websocket.scope.get("state", {}).get("principal")
    if principal is None:
        raise tickets.InvalidTicket("credentials are required")
    return principal
