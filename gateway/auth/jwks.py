"""An identity provider's signing keys (a JWKS document), as sign-in's ID tokens and bearer JWTs
are checked against them: fetched on first use, fetched again once they are
:data:`MAX_AGE_SECONDS` old (a key the provider withdrew stops verifying), and fetched again
when a token names a key id they lack, at most once a :data:`REFETCH_SECONDS` per provider (a
rotation is picked up at once; tokens naming made-up ids cannot make a fetch each).

Fetches go to the operator's configuration, not a tenant's input, so they are not subject to
the egress rule connectors' calls go through. A provider that does not answer gets the caller a
fast 503 ``identity_provider_unavailable`` (504 on a timeout), never a 500."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import structlog
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from common.errors import GatewayTimeout, ServiceUnavailable

log = structlog.get_logger(component="seedos.gateway.jwks")

MAX_AGE_SECONDS = 600.0
REFETCH_SECONDS = 60.0


class ProviderUnavailable(ServiceUnavailable):
    code = "identity_provider_unavailable"


async def fetch_json(http: httpx.AsyncClient, url: str, *, provider: str) -> dict[str, Any]:
    """The JSON object at ``url``, or :class:`ProviderUnavailable` / :class:`GatewayTimeout`."""
    try:
        try:
            response = await http.get(url, headers={"accept": "application/json"})
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            # a pooled connection the provider closed while idle: a GET may go again
            response = await http.get(url, headers={"accept": "application/json"})
    except httpx.TimeoutException:
        raise GatewayTimeout(f"provider {provider} did not answer in time") from None
    except httpx.HTTPError as exc:
        log.warning("oidc_provider_unreachable", provider=provider, error=type(exc).__name__)
        raise ProviderUnavailable(f"provider {provider} is unavailable") from None
    if response.status_code != 200:
        raise ProviderUnavailable(f"provider {provider} answered {response.status_code}")
    try:
        document = response.json()
    except ValueError:
        raise ProviderUnavailable(f"provider {provider} sent no JSON") from None
    if not isinstance(document, dict):
        raise ProviderUnavailable(f"provider {provider} sent no JSON object")
    return document


class KeyCache:
    """One provider's keys. ``fetch`` gives its JWKS document (it raises when the provider is
    unavailable)."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[dict[str, Any]]],
        *,
        provider: str,
        max_age: float = MAX_AGE_SECONDS,
        refetch_every: float = REFETCH_SECONDS,
    ) -> None:
        self._fetch = fetch
        self._provider = provider
        self._max_age = max_age
        self._refetch_every = refetch_every
        self._keys: KeySet | None = None
        self._fetched_at = -math.inf
        self._refetched_at = -math.inf  # the last fetch an unknown key id made
        self._lock = asyncio.Lock()

    async def for_token(self, token: str) -> KeySet:
        """The keys to verify ``token`` with (which may still lack its key id)."""
        return await self.for_kid(kid_of(token))

    async def for_kid(self, kid: str | None) -> KeySet:
        keys = self._keys
        if keys is not None and self._young() and (kid is None or has_kid(keys, kid)):
            return keys
        async with self._lock:
            keys = self._keys
            if keys is None or not self._young():
                await self._load(keep_on_failure=keys is not None and has_kid(keys, kid))
            elif not has_kid(keys, kid) and self._may_refetch():
                self._refetched_at = time.monotonic()
                await self._load(keep_on_failure=False)
        assert self._keys is not None
        return self._keys

    def _may_refetch(self) -> bool:
        return time.monotonic() - self._refetched_at >= self._refetch_every

    def _young(self) -> bool:
        return time.monotonic() - self._fetched_at < self._max_age

    async def _load(self, *, keep_on_failure: bool) -> None:
        """Fetch the keys. ``keep_on_failure``: the keys held still verify this token, so a
        provider down keeps them for another minute rather than failing the caller."""
        try:
            document = await self._fetch()
            try:
                keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError, AttributeError):
                raise ProviderUnavailable(
                    f"provider {self._provider} sent no usable keys"
                ) from None
        except (ProviderUnavailable, GatewayTimeout):
            if not keep_on_failure:
                raise
            log.warning("jwks_kept_after_failed_fetch", provider=self._provider)
            self._fetched_at = time.monotonic() - self._max_age + self._refetch_every
            return
        self._keys = keys
        self._fetched_at = time.monotonic()


def kid_of(token: str) -> str | None:
    try:
        kid = extract_compact(token.encode()).headers().get("kid")
    except (JoseError, ValueError):
        return None
    return kid if isinstance(kid, str) else None


def has_kid(keys: KeySet, kid: str | None) -> bool:
    return kid is None or any(key.kid == kid for key in keys.keys)
