"""Live sync: the y-websocket endpoint ``WS sync/ws``.

A y-websocket client connects to ``serverUrl + '/' + room``: with serverUrl
``…/api/v1/integrations/{id}/sync`` and room ``ws`` that is this endpoint. Credentials are
checked before the connection is accepted, so a client without valid ones gets the handshake
refused (HTTP 403; close code 1008 to the application) and never any state: the internal token
the gateway minted for the caller (its API key or session, or the one its ticket was issued to:
the gateway issues and redeems tickets, and checks the credential again while the socket is
open)."""

from __future__ import annotations

import uuid

import structlog
from fastapi import APIRouter, WebSocket

from common.errors import PROBLEM_RESPONSES, SeedosError, Unauthorized
from common.internal_auth import Principal
from common.roles import Permission, allows
from connector_service.integrations import calls
from connector_service.sync import shard_sql
from connector_service.sync.connection import Connection
from connector_service.sync.hub import POLICY_VIOLATION, SHARD_SPLIT, SPLIT_REASON
from connector_service.sync.layout import ShardNotFound, ShardSplit

# an install whose records outgrew one document: its whole-install room is closed
ROOT_SPLIT_REASON = "shard_split: records are in shards, join sync/ws?shard=<id> (GET sync/shards)"

log = structlog.get_logger(component="connector_service.sync.ws")

router = APIRouter(
    prefix="/api/v1/integrations/{integration_id}", tags=["sync"], responses=PROBLEM_RESPONSES
)


@router.websocket("/sync/ws")
async def sync_ws(websocket: WebSocket, integration_id: uuid.UUID) -> None:
    """y-websocket sync of one shard's document, ``?shard=<id>``, or without it the install's
    root (see README, "Live sync over WebSocket")."""
    app = websocket.app
    try:
        principal = _caller(websocket)
        principal.require(Permission.read)
        target = await calls.load_target(app.state.db, principal.tenant_id, integration_id)
        shard_id = _shard_param(websocket)
        async with app.state.db.connection() as conn:
            shard = await shard_sql.named_shard(conn, target.id, shard_id)
    except ShardSplit:  # accepted, then closed: the client hears the reason, and where to go
        await websocket.accept()
        reason = ROOT_SPLIT_REASON if _shard_param(websocket) is None else SPLIT_REASON
        await websocket.close(SHARD_SPLIT, reason)
        return
    except SeedosError as exc:
        log.info("sync_ws_refused", integration_id=str(integration_id), code=exc.code)
        await websocket.close(POLICY_VIOLATION)  # before accepting: the handshake gets 403
        return
    await websocket.accept()
    connection = Connection(
        websocket, hub=app.state.sync_hub, store=app.state.sync_store, target=target,
        shard=shard, writable=allows(principal.role, Permission.write),
        sender=principal.subject, group=app.state.sync_group,
    )  # fmt: skip
    await connection.serve()


def _shard_param(websocket: WebSocket) -> uuid.UUID | None:
    value = websocket.query_params.get("shard")
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ShardNotFound("shard must be a shard's id (GET sync/shards)") from None


def _caller(websocket: WebSocket) -> Principal:
    """The caller of the internal token (the middleware refuses a socket without one)."""
    principal = websocket.scope.get("state", {}).get("principal")
    if principal is None:
        raise Unauthorized("credentials are required")
    return principal
