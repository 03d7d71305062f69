from __future__ import annotations

import html
import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from common.crypto import KeyRing
from common.db import Database, Db, ReadDb
from common.errors import PROBLEM_RESPONSES
from common.internal_auth import CurrentPrincipal, requires
from common.roles import Permission
from connector_service.integrations import calls
from connector_service.oauth import service
from connector_service.oauth.config import CALLBACK_PATH, OAuthConfig
from connector_service.oauth.schemas import ClientIn, ClientOut, ConnectIn, ConnectOut

router = APIRouter(
    prefix="/api/v1/integrations",
    tags=["integrations"],
    dependencies=[requires(Permission.read)],
    responses=PROBLEM_RESPONSES,
)
# The provider sends the user's browser here: no API key, no tenant. The gateway forwards this
# one path without authenticating it; the single-use state is the only authorization.
public_router = APIRouter(tags=["integrations"], responses=PROBLEM_RESPONSES)
Writer = [requires(Permission.write)]


async def _keyring(request: Request) -> KeyRing:
    return request.app.state.keyring


async def _oauth(request: Request) -> OAuthConfig:
    return request.app.state.oauth


async def _database(request: Request) -> Database:
    return request.app.state.db


Ring = Annotated[KeyRing, Depends(_keyring)]
OAuth = Annotated[OAuthConfig, Depends(_oauth)]
Pool = Annotated[Database, Depends(_database)]

_CONNECTED_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Connected</title></head>
<body><h1>Connected</h1><p>The account is connected to integration {id}. You can close this
page.</p></body></html>
"""


@router.post("/{integration_id}/oauth/connect", response_model=ConnectOut, dependencies=Writer)
async def connect(
    integration_id: uuid.UUID,
    db: Db,
    principal: CurrentPrincipal,
    ring: Ring,
    oauth: OAuth,
    body: ConnectIn | None = None,
) -> dict:
    """Start connecting the install's account (OAuth 2.0 authorization code with PKCE): send
    the browser to `authorization_url` within 10 minutes. 422 `oauth_not_supported` for a
    connector that does not use OAuth, `oauth_client_missing` without a client for it."""
    return await service.connect(
        db, ring, oauth, tenant_id=principal.tenant_id, integration_id=integration_id,
        user=principal.subject, return_to=body.return_to if body else None,
    )  # fmt: skip


@public_router.get(CALLBACK_PATH, response_class=HTMLResponse)
async def callback(
    request: Request,
    tasks: BackgroundTasks,
    pool: Pool,
    ring: Ring,
    oauth: OAuth,
    state: Annotated[str | None, Query(max_length=512)] = None,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    """Where the provider redirects the browser. Completes the connect, then redirects (303) to
    its `return_to` or answers a small page. 400 for an unknown, used or expired state or a
    refused authorization; the state is used up either way."""
    principal = request.scope.get("state", {}).get("principal")
    done = await service.complete(
        pool, ring, oauth, state=state, code=code, error=error,
        request_id=principal.request_id if principal else None,
    )  # fmt: skip
    # check the install with its new token once this answer (and the commit) is out
    tasks.add_task(calls.check_in_background, request.app.state.db, request.app.state.manager,
                   done.tenant_id, done.integration_id)  # fmt: skip
    if done.return_to:
        return RedirectResponse(done.return_to, status_code=303)
    return HTMLResponse(_CONNECTED_PAGE.format(id=html.escape(str(done.integration_id))))


@router.get("/{integration_id}/oauth/client", response_model=ClientOut)
async def get_client(
    integration_id: uuid.UUID, db: ReadDb, principal: CurrentPrincipal, oauth: OAuth
) -> dict:
    """Whether this install has its own OAuth client, the platform has one, and an account is
    connected. Client secrets and tokens never leave the service."""
    return await service.client_status(
        db, oauth, tenant_id=principal.tenant_id, integration_id=integration_id
    )


@router.put("/{integration_id}/oauth/client", response_model=ClientOut, dependencies=Writer)
async def put_client(
    integration_id: uuid.UUID,
    body: ClientIn,
    db: Db,
    principal: CurrentPrincipal,
    ring: Ring,
    oauth: OAuth,
) -> dict:
    """Bring your own OAuth app: this install's client id and secret (stored encrypted),
    used instead of the platform's from the next connect or refresh."""
    return await service.set_client(
        db, ring, oauth, tenant_id=principal.tenant_id, integration_id=integration_id,
        actor=principal.subject, client_id=body.client_id, client_secret=body.client_secret,
        request_id=principal.request_id,
    )  # fmt: skip


@router.delete("/{integration_id}/oauth/client", response_model=ClientOut, dependencies=Writer)
async def delete_client(
    integration_id: uuid.UUID, db: Db, principal: CurrentPrincipal, ring: Ring, oauth: OAuth
) -> dict:
    """Back to the platform's OAuth client."""
    return await service.set_client(
        db, ring, oauth, tenant_id=principal.tenant_id, integration_id=integration_id,
        actor=principal.subject, client_id=None, client_secret=None,
        request_id=principal.request_id,
    )  # fmt: skip
