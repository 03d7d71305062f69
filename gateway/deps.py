"""Shared dependency types of the gateway's own routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from common.internal_auth import Principal
from common.roles import Permission
from gateway.auth.authenticator import Authenticator


async def get_authenticator(request: Request) -> Authenticator:
    return request.app.state.authenticator


Authenticated = Annotated[Authenticator, Depends(get_authenticator)]


async def current_principal(request: Request, auth: Authenticated) -> Principal:
    state = request.scope.setdefault("state", {})
    # A request with a body was authenticated before it was read (gateway.guard).
    principal = state.get("principal")
    if principal is None:
        principal = state["principal"] = await auth.authenticate(request)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(permission: Permission):
    """Route dependency: the caller's role must grant ``permission`` (403 otherwise)."""

    async def check(principal: CurrentPrincipal) -> None:
        principal.require(permission)

    return Depends(check)
