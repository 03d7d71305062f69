from __future__ import annotations

import html
import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from common.crypto import KeyRing
from common.db import Db, Pool, ReadDb
from common.errors import PROBLEM_RESPONSES
from common.internal_auth import CurrentPrincipal, requires
from common.roles import Permission
from connector_service.integrations import calls
from connector_service.oauth import service
from connector_service.oauth.config import (
    BINDING_COOKIE,
    BINDING_HEADER,
    CALLBACK_PATH,
    START_PATH,
    OAuthConfig,
)
from connector_service.oauth.schemas import ClientIn, ClientOut, ConnectIn, ConnectOut

router = APIRouter(
    prefix="/api/v1/integrations",
    tags=["integrations"],
    dependencies=[requires(Permission.read)],
    responses=PROBLEM_RESPONSES,
)
# The browser that will approve a connect opens its start URL, and the provider sends it back to
# the callback: no API key, no tenant. The gateway forwards these two paths without
# authenticating them, with the value of the binding cookie (only) in BINDING_HEADER; the
# single-use start token, then the single-use state and that cookie, are the authorization.
public_router = APIRouter(tags=["integrations"], responses=PROBLEM_RESPONSES)
Writer = [requires(Permission.write)]


async def _keyring(request: Request) -> KeyRing:
    return request.app.state.keyring


async def _oauth(request: Request) -> OAuthConfig:
    return request.app.state.oauth


Ring = Annotated[KeyRing, Depends(_keyring)]
OAuth = Annotated[OAuthConfig, Depends(_oauth)]
NO_STORE = {"Cache-Control": "no-store"}
# __Host-: Secure, Path=/ and no Domain, so no other host (not even a subdomain) can set it; Lax:
# sent on the provider's top-level GET redirect back, not on other sites' subrequests.
_COOKIE = {"path": "/", "secure": True, "httponly": True, "samesite": "Lax"}

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
    """Start connecting the install's account (OAuth 2.0 authorization code with PKCE): open
    `authorization_url`, a single-use start URL on the gateway, within 10 minutes in the
    browser that will approve; the connect is bound to that browser, and its callback is
    refused in any other. 422 `oauth_not_supported` for a connector that does not use OAuth,
    `oauth_client_missing` without a client for it."""
    return await service.connect(
        db, ring, oauth, tenant_id=principal.tenant_id, integration_id=integration_id,
        user=principal.subject, return_to=body.return_to if body else None,
    )  # fmt: skip


@public_router.get(
    START_PATH,
    status_code=303,
    response_class=RedirectResponse,
    responses={303: {"description": "To the provider, with the binding cookie set"}},
)
async def start(
    request: Request,
    db: Db,
    ring: Ring,
    token: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """Open a connect's `authorization_url` here, in the browser that will approve: it uses the
    single-use token up, sets the `__Host-seedos_oauth` cookie (Secure, HttpOnly,
    SameSite=Lax, 10 minutes) that binds the connect to this browser, and redirects (303) to
    the provider. A connect a signed-in person started opens only in a browser where that
    person is signed in (403 `connect_other_person`); one an API key started, in whichever
    browser opens it first. 400 `connect_start_invalid` for an unknown or already opened link,
    `connect_start_expired` for one older than 10 minutes."""
    principal = request.scope.get("state", {}).get("principal")
    person = principal if principal is not None and principal.subject.startswith("user:") else None
    started = await service.start(db, ring, token=token, opener=person)
    response = RedirectResponse(started.authorization_url, status_code=303, headers=NO_STORE)
    response.set_cookie(
        BINDING_COOKIE, started.binding, max_age=service.STATE_TTL_SECONDS, **_COOKIE
    )
    return response


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
    its `return_to` or answers a small page. 400 for an unknown, used or expired state, a
    refused authorization, or `connect_binding_mismatch` in a browser that did not open the
    connect's start URL (audited as `integration.connect_refused`); the state is used up
    either way."""
    principal = request.scope.get("state", {}).get("principal")
    done = await service.complete(
        pool, ring, oauth, state=state, code=code, error=error,
        binding=request.headers.get(BINDING_HEADER),
        request_id=principal.request_id if principal else None,
    )  # fmt: skip
    # check the install with its new token once this answer (and the commit) is out
    tasks.add_task(calls.check_in_background, request.app.state.db, request.app.state.manager,
                   done.tenant_id, done.integration_id)  # fmt: skip
    response: Response
    if done.return_to:
        response = RedirectResponse(done.return_to, status_code=303, headers=NO_STORE)
    else:
        page = _CONNECTED_PAGE.format(id=html.escape(str(done.integration_id)))
        response = HTMLResponse(page, headers=NO_STORE)
    response.delete_cookie(BINDING_COOKIE, **_COOKIE)  # used: nothing is bound to it any more
    return response


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
