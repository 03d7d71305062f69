"""Who may call the demo CRM: API keys, and OAuth 2.0 bearer tokens by introspection.

A request carries ``X-API-Key: <key>`` or ``Authorization: Bearer <token>``. A key or bearer
token listed in ``DEMO_CRM_API_KEYS`` is accepted at once. Any other bearer token is sent to the
RFC 7662 introspection endpoint (``DEMO_CRM_INTROSPECTION_URL``, form ``token=...``, HTTP Basic
with the CRM's client id and secret) and accepted while ``active`` is true and, when
``DEMO_CRM_REQUIRED_SCOPE`` is set, its ``scope`` contains that scope. Active answers are
reused for at most 30 seconds (never past the token's ``exp``); refusals are not cached.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

import httpx
from cachetools import TTLCache

from .errors import AuthServerUnavailable, InsufficientScope, Unauthorized
from .settings import Settings


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    kind: str  # "api_key" or "oauth"
    subject: str | None = None
    client_id: str | None = None
    scope: str = ""


@dataclass(frozen=True)
class _Cached:
    principal: Principal
    expires: float


class Authenticator:
    """Checks credentials; holds the introspection HTTP client and cache."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self._settings = settings
        self._client = client
        self._keys = tuple(key.encode() for key in settings.api_keys)
        self._cache: TTLCache[str, _Cached] = TTLCache(maxsize=10_000, ttl=30)

    async def authenticate(self, *, api_key: str | None, authorization: str | None) -> Principal:
        """The caller behind these headers; :class:`Unauthorized` if there is none."""
        if api_key:
            if self._is_key(api_key):
                return Principal(kind="api_key")
            raise Unauthorized("unknown API key")
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized()
        if self._is_key(token):
            return Principal(kind="api_key")
        return await self._introspect(token)

    def _is_key(self, candidate: str) -> bool:
        given = candidate.encode()
        return any(hmac.compare_digest(given, key) for key in self._keys)

    async def _introspect(self, token: str) -> Principal:
        settings = self._settings
        if not settings.introspection_url:
            raise Unauthorized("unknown token")
        digest = hashlib.sha256(token.encode()).hexdigest()
        cached = self._cache.get(digest)
        if cached is not None and cached.expires > time.time():
            return cached.principal
        auth = None
        if settings.introspection_client_id:
            secret = settings.introspection_client_secret
            auth = (settings.introspection_client_id, secret.get_secret_value() if secret else "")
        try:
            response = await self._client.post(
                settings.introspection_url,
                data={"token": token, "token_type_hint": "access_token"},
                auth=auth,
                headers={"Accept": "application/json"},
                timeout=settings.introspection_timeout,
            )
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise AuthServerUnavailable(
                f"token introspection failed: {type(exc).__name__}"
            ) from None
        if not isinstance(answer, dict) or answer.get("active") is not True:
            raise Unauthorized("inactive token")
        now = time.time()
        exp = answer.get("exp")
        if isinstance(exp, int | float) and exp <= now:
            raise Unauthorized("expired token")
        scope = str(answer.get("scope") or "")
        required = settings.required_scope
        if required and required not in scope.split():
            raise InsufficientScope(required)
        principal = Principal(
            kind="oauth", subject=answer.get("sub"), client_id=answer.get("client_id"), scope=scope
        )
        expires = now + settings.introspection_cache_seconds
        if isinstance(exp, int | float):
            expires = min(expires, exp)
        self._cache[digest] = _Cached(principal, expires)
        return principal
