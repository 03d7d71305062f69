"""Short-lived signed tokens between services (DESIGN.md, "Identity between services").

``iss`` is the calling service, ``aud`` the called one; the token carries the tenant, subject,
role and request id. Every service requires one on every route except health and metrics.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from starlette.types import ASGIApp, Receive, Scope, Send

from common.errors import Forbidden, Unauthorized, error_response
from common.roles import Permission, allows

_ALGORITHMS = ["HS256"]
_HEADER = {"alg": "HS256", "typ": "JWT"}
LEEWAY_SECONDS = 5
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: resolved by the gateway, carried in the internal token."""

    tenant_id: uuid.UUID
    subject: str
    role: str
    issuer: str = "gateway"
    request_id: str | None = None
    tenant_slug: str | None = None
    # Known to the gateway only (internal tokens carry none of these): how the caller signed
    # in ("api_key", "session", "internal"), the person and session behind a session, and
    # whether they are a platform operator.
    auth_method: str = "internal"
    user_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None
    operator: bool = False
    suspended: bool = False  # the tenant is suspended (only routes that allow it see this)

    @property
    def has_tenant(self) -> bool:
        return self.tenant_id.int != 0

    def require(self, permission: Permission) -> None:
        if not allows(self.role, permission):
            raise Forbidden(
                f"role '{self.role}' may not {permission.value}", required=permission.value
            )


class TokenSigner:
    """Mints internal tokens for calls this service makes.

    joserfc rather than PyJWT: on this machine it signs in 39 us against 64 us and verifies in
    81 us against 143 us, and a proxied request pays for one of each."""

    def __init__(self, *, key: str, issuer: str, ttl_seconds: int = 60) -> None:
        self._key = OctKey.import_key(key)
        self.issuer = issuer
        self.ttl = ttl_seconds

    def mint(self, principal: Principal, *, audience: str, request_id: str | None = None) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": audience,
            "sub": principal.subject,
            "tid": str(principal.tenant_id),
            "role": principal.role,
            "rid": request_id or principal.request_id,
            "iat": now,
            "exp": now + self.ttl,
        }
        if principal.tenant_slug:
            claims["tsl"] = principal.tenant_slug
        return jwt.encode(_HEADER, claims, self._key, algorithms=_ALGORITHMS)


class TokenVerifier:
    def __init__(self, *, key: str, audience: str) -> None:
        self._key = OctKey.import_key(key)
        self.audience = audience
        essential = {"essential": True}
        self._claims = jwt.JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS,
            iss=essential,
            aud={"essential": True, "value": audience},
            sub=essential,
            exp=essential,
            iat=essential,
            tid=essential,
            role=essential,
        )

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(token, self._key, algorithms=_ALGORITHMS).claims
            self._claims.validate(claims)
            return Principal(
                tenant_id=uuid.UUID(claims["tid"]),
                subject=str(claims["sub"]),
                role=str(claims["role"]),
                issuer=str(claims["iss"]),
                request_id=claims.get("rid"),
                tenant_slug=claims.get("tsl"),
            )
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise Unauthorized(f"invalid internal token: {exc}") from None


def bearer_token(scope: Scope) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


class InternalAuthMiddleware:
    """Refuses every request but health and metrics without a valid internal token."""

    def __init__(self, app: ASGIApp, *, verifier: TokenVerifier) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope)
        try:
            if not token:
                raise Unauthorized("an internal token is required")
            principal = self.verifier.verify(token)
        except Unauthorized as exc:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await error_response(exc, scope["path"])(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


async def get_principal(request: Request) -> Principal:
    principal = request.scope.get("state", {}).get("principal")
    if principal is None:
        raise Unauthorized()
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def requires(permission: Permission):
    """Dependency factory: the caller's role must grant ``permission``.

    Dependencies here are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in a
    thread pool, which cost about a millisecond a request on this machine."""

    async def check(principal: CurrentPrincipal) -> Principal:
        principal.require(permission)
        return principal

    return Depends(check)
