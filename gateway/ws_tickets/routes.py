"""``POST /api/v1/integrations/{id}/sync/ticket``: the gateway answers it itself (every other
path under ``/api/v1/integrations`` is forwarded, see :class:`gateway.app.GatewayApp`)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from common.db import Pool  # the connection only once connector_service has answered
from common.errors import PROBLEM_RESPONSES
from common.roles import Permission
from gateway.auth.authenticator import credential_of
from gateway.deps import CurrentPrincipal, require
from gateway.ws_tickets import service
from gateway.ws_tickets.schemas import Ticket

router = APIRouter(
    prefix="/api/v1/integrations/{integration_id}", tags=["sync"], responses=PROBLEM_RESPONSES
)
UPSTREAM = "connector_service"  # owns the integrations


@router.post("/sync/ticket", response_model=Ticket, dependencies=[require(Permission.read)])
async def ticket(
    integration_id: uuid.UUID, request: Request, principal: CurrentPrincipal, pool: Pool
) -> dict:
    """A single-use ticket for ``sync/ws?ticket=``, valid for 60 seconds, for this integration.
    It stands for the credential that asked for it: the socket acts as that API key or session
    and closes (1008) once it is revoked or ended, the member removed or the tenant suspended.
    A viewer's ticket reads only (``writable: false``): updates sent with it close the
    connection with 1008."""
    state = request.app.state
    await service.check_integration(
        state.upstreams[UPSTREAM], state.proxy.signer, principal, integration_id
    )
    async with pool.connection() as conn:
        return await service.issue(
            conn, principal, credential=credential_of(request), integration_id=integration_id
        )
