"""Short-lived signed tokens between services (DESIGN.md, "Identity between services").

``iss`` is the calling service, ``aud`` the called one; the token carries the tenant, subject and
role; the request id travels beside it in ``X-Request-ID``. Every service requires one on every
route except health and metrics.

Each signing service has its own Ed25519 key (:mod:`common.service_keys`; algorithm
``Ed25519``, RFC 9864, with the key id in the header), so a service can vouch only for itself:
a verifier takes a token's key by its ``kid`` among the public keys listed for the token's
``iss``, and accepts only the issuers it trusts, each for what that issuer may ask (a
:class:`Grant`): connector_service takes anything from the gateway but only install and
uninstall from marketplace_service. A token living longer than the verifier's maximum
lifetime is refused, however it is signed.

Costs, measured on this machine: signing 49 us, verifying 124 us (Ed25519 via joserfc). A
signer may hand out the same token for one principal and audience for a few seconds
(``reuse_seconds``), and a verifier remembers the tokens it verified until they expire, so a
busy path pays for neither on most requests.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Annotated

from cachetools import LRUCache
from fastapi import Depends, Request
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from starlette.types import ASGIApp, Receive, Scope, Send

from common.errors import Forbidden, Unauthorized, error_response
from common.roles import Permission, allows
from common.service_keys import PublicKeys

ALGORITHM = "Ed25519"
_ALGORITHMS = [ALGORITHM]
LEEWAY_SECONDS = 5
DEFAULT_MAX_LIFETIME_SECONDS = 300
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_VERIFIED_CACHE_SIZE = 10_000
_UNKNOWN = (None, None)


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


class Grant:
    """What one issuer may ask of a service: everything (:data:`ANYTHING`), or only the listed
    (method, path pattern) pairs, patterns matched whole. A WebSocket asks with method
    ``WEBSOCKET``."""

    def __init__(self, *routes: tuple[str, str], everything: bool = False) -> None:
        self.everything = everything
        self.routes = tuple((method, re.compile(pattern)) for method, pattern in routes)

    def allows(self, method: str, path: str) -> bool:
        return self.everything or any(
            m == method and pattern.fullmatch(path) for m, pattern in self.routes
        )


ANYTHING = Grant(everything=True)
GATEWAY_ONLY: Mapping[str, Grant] = {"gateway": ANYTHING}


class TokenSigner:
    """Mints internal tokens for calls this service makes, with its own private key.

    ``reuse_seconds``: the same token is handed out again for the same principal and audience
    for that long (it stays valid for ``ttl_seconds``), so a busy caller signs once every few
    seconds rather than once a request."""

    def __init__(
        self, *, key: OKPKey, issuer: str, ttl_seconds: int = 60, reuse_seconds: float = 0
    ) -> None:
        if key.kid is None or not key.is_private:
            raise ValueError("an internal signing key is a private key with a key id")
        if reuse_seconds >= ttl_seconds:
            raise ValueError("a token is reused for less than its lifetime")
        self._key = key
        self._header = {"alg": ALGORITHM, "typ": "JWT", "kid": key.kid}
        self.issuer = issuer
        self.ttl = ttl_seconds
        self.reuse = reuse_seconds
        self._recent: LRUCache[tuple, tuple[float, str]] = LRUCache(maxsize=_VERIFIED_CACHE_SIZE)

    def mint(self, principal: Principal, *, audience: str) -> str:
        if self.reuse <= 0:
            return self._sign(principal, audience)
        who = (audience, principal.tenant_id, principal.subject, principal.role,
               principal.tenant_slug)  # fmt: skip
        now = time.monotonic()
        recent = self._recent.get(who)
        if recent is not None and now - recent[0] < self.reuse:
            return recent[1]
        token = self._sign(principal, audience)
        self._recent[who] = (now, token)
        return token

    def _sign(self, principal: Principal, audience: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": audience,
            "sub": principal.subject,
            "tid": str(principal.tenant_id),
            "role": principal.role,
            "iat": now,
            "exp": now + self.ttl,
        }
        if principal.tenant_slug:
            claims["tsl"] = principal.tenant_slug
        return jwt.encode(self._header, claims, self._key, algorithms=_ALGORITHMS)


class TokenVerifier:
    """Accepts tokens for ``audience`` from the ``trust``-ed issuers, each signed with a key
    listed for its issuer in ``public_keys``, living at most ``max_lifetime_seconds``."""

    def __init__(
        self,
        *,
        public_keys: PublicKeys,
        audience: str,
        trust: Mapping[str, Grant] = GATEWAY_ONLY,
        max_lifetime_seconds: int = DEFAULT_MAX_LIFETIME_SECONDS,
    ) -> None:
        self.audience = audience
        self.trust = dict(trust)
        self.max_lifetime = max_lifetime_seconds
        # only the trusted issuers' keys: another's cannot even be looked up
        self._keys = {
            kid: (issuer, key)
            for issuer, keys in public_keys.by_issuer.items()
            if issuer in self.trust
            for kid, key in keys.items()
        }
        self._verified: LRUCache[str, tuple[int, Principal]] = LRUCache(
            maxsize=_VERIFIED_CACHE_SIZE
        )
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
        """The token's principal, or 401 ``Unauthorized``."""
        cached = self._verified.get(token)
        if cached is not None and cached[0] > time.time() - LEEWAY_SECONDS:
            return cached[1]
        try:
            kid = jws.extract_compact(token.encode()).protected.get(
                "kid"
            )  # read, not trusted, until verified
            issuer, key = self._keys.get(kid, _UNKNOWN) if isinstance(kid, str) else _UNKNOWN
            if key is None:
                raise Unauthorized("invalid internal token: signed with a key not trusted here")
            claims = jwt.decode(token, key, algorithms=_ALGORITHMS).claims
            self._claims.validate(claims)
            if claims["iss"] != issuer:
                raise Unauthorized(f"invalid internal token: key {kid} is not {claims['iss']}'s")
            lifetime = claims["exp"] - claims["iat"]
            if lifetime > self.max_lifetime or claims["iat"] > time.time() + LEEWAY_SECONDS:
                raise Unauthorized(
                    f"invalid internal token: lives {lifetime} s, at most {self.max_lifetime} s"
                    " from now are accepted"
                )
            principal = Principal(
                tenant_id=uuid.UUID(claims["tid"]),
                subject=str(claims["sub"]),
                role=str(claims["role"]),
                issuer=issuer,
                tenant_slug=claims.get("tsl"),
            )
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise Unauthorized(f"invalid internal token: {exc}") from None
        self._verified[token] = (int(claims["exp"]), principal)
        return principal

    def allowed(self, principal: Principal, method: str, path: str) -> bool:
        grant = self.trust.get(principal.issuer)
        return grant is not None and grant.allows(method, path)


def bearer_token(scope: Scope) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


class InternalAuthMiddleware:
    """Refuses every request but health, metrics and the service's ``public_prefixes`` (reads
    only) without a valid internal token (401), or
    asking what its issuer may not ask here (403 ``issuer_not_allowed``). The principal takes
    the request id the request carries (``X-Request-ID``, read by the observability layer
    outside this one)."""

    def __init__(
        self, app: ASGIApp, *, verifier: TokenVerifier, public_prefixes: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.public_prefixes = public_prefixes  # a service's own token-free reads

    def _public(self, path: str) -> bool:
        """A public prefix and one plain segment after it (no '/', '\\', '.' or '..': nothing
        that could name another route once resolved)."""
        for prefix in self.public_prefixes:
            rest = path[len(prefix) :] if path.startswith(prefix) else ""
            if rest and "/" not in rest and "\\" not in rest and rest not in (".", ".."):
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and (self._public(scope["path"]))
        ):
            await self.app(scope, receive, send)
            return
        if scope["type"] not in ("http", "websocket") or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope)
        state = scope.setdefault("state", {})
        method = scope["method"] if scope["type"] == "http" else "WEBSOCKET"
        try:
            if not token:
                raise Unauthorized("an internal token is required")
            principal = self.verifier.verify(token)
            if not self.verifier.allowed(principal, method, scope["path"]):
                raise IssuerNotAllowed(
                    f"{principal.issuer} may not ask for {method} {scope['path']} here"
                )
        except (Unauthorized, Forbidden) as exc:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await error_response(exc, scope["path"])(scope, receive, send)
            return
        state["principal"] = replace(principal, request_id=state.get("request_id"))
        await self.app(scope, receive, send)


class IssuerNotAllowed(Forbidden):
    code, title = "issuer_not_allowed", "Not for this caller"


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
