"""Shared dependency types of the gateway's own routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from common.errors import Forbidden
from common.internal_auth import Principal
from common.roles import Permission
from gateway.auth import failures
from gateway.auth.authenticator import Authenticator, refuse_suspended
from gateway.settings import GatewaySettings


async def get_authenticator(request: Request) -> Authenticator:
    return request.app.state.authenticator


async def get_settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


Authenticated = Annotated[Authenticator, Depends(get_authenticator)]
Settings = Annotated[GatewaySettings, Depends(get_settings)]


async def _principal(request: Request, auth: Authenticator, *, allow_suspended: bool) -> Principal:
    """The caller, authenticated once per request, then admitted by the rate limits."""
    state = request.scope.setdefault("state", {})
    # A request with a body was authenticated before it was read (gateway.guard).
    principal = state.get("principal")
    if principal is None:
        principal = await auth.authenticate(request, allow_suspended=allow_suspended)
        state["principal"] = principal
    elif principal.suspended and not allow_suspended:
        refuse_suspended(principal)
    await request.app.state.rate_limiter.admit(request.scope, principal)  # gateway/limits
    return principal


async def current_principal(request: Request, auth: Authenticated) -> Principal:
    return await _principal(request, auth, allow_suspended=False)


async def any_principal(request: Request, auth: Authenticated) -> Principal:
    """The caller, even when their tenant is suspended (who am I, my sessions, operators)."""
    return await _principal(request, auth, allow_suspended=True)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
AnyPrincipal = Annotated[Principal, Depends(any_principal)]


async def signed_in_person(principal: AnyPrincipal) -> Principal:
    """A person signed in with a session (403 for API keys: they have no user)."""
    if principal.user_id is None or principal.session_id is None:
        failures.record(principal.auth_method, "not_a_person")
        raise Forbidden("only a signed-in person may do this", code="session_required")
    return principal


Person = Annotated[Principal, Depends(signed_in_person)]


async def platform_operator(principal: AnyPrincipal) -> Principal:
    if not principal.operator:
        failures.record(principal.auth_method, "not_an_operator")
        raise Forbidden("platform operators only", code="operator_required")
    return principal


Operator = Annotated[Principal, Depends(platform_operator)]


def require(permission: Permission):
    """Route dependency: the caller's role must grant ``permission`` (403 otherwise)."""

    async def check(request: Request, principal: CurrentPrincipal, auth: Authenticated) -> None:
        if not principal.has_tenant:
            failures.record(principal.auth_method, "no_tenant")
            raise Forbidden("choose a tenant first (POST /api/v1/me/tenant)", code="no_tenant")
        try:
            principal.require(permission)
        except Forbidden:
            failures.record(principal.auth_method, "role")
            auth.failure_audit.refused(
                tenant_id=principal.tenant_id, actor=principal.subject, reason="role",
                path=request.url.path, request_id=principal.request_id,
            )  # fmt: skip
            raise

    return Depends(check)
