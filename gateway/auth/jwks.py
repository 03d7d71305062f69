"""An identity provider's signing keys (a JWKS document), as sign-in's ID tokens and bearer JWTs
are checked against them.

- Fetched on first use, and again once they are :data:`MAX_AGE_SECONDS` old (a key the
  provider withdrew stops verifying). That refresh runs in the background: a token whose key
  id the held keys have is verified with them at once, never waiting on the provider, and the
  held keys keep verifying while the provider is down.
- Fetched again when a token names a key id they lack, at most once a :data:`REFETCH_SECONDS`
  per provider (a rotation is picked up at once; tokens naming made-up ids cannot make a fetch
  each): within that minute such a token is refused as naming an unknown key (401).
- A failed fetch counts too (before the first good one as well): nothing is fetched for
  :data:`REFETCH_SECONDS` after it, and meanwhile a token the held keys cannot verify is a fast
  503 ``identity_provider_unavailable`` with ``Retry-After``, not a 401: its key may be a new
  one the provider could not give us.
- Callers arriving while a fetch is under way share it; a provider that does not answer gets
  them a 503 (504 on a timeout), never a 500.
- A document is read up to :data:`MAX_DOCUMENT_BYTES` (more is a 503), within the client's
  timeouts in all; a ``jwks_uri`` from discovery must be https (plain http only on loopback),
  as configured URLs must (:func:`keys_url`).

Fetches go to the operator's configuration, not a tenant's input, so they are not subject to
the egress rule connectors' calls go through."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from common.errors import GatewayTimeout, SeedosError, ServiceUnavailable
from gateway.settings import is_loopback

log = structlog.get_logger(component="seedos.gateway.jwks")

MAX_AGE_SECONDS = 600.0
REFETCH_SECONDS = 60.0
MAX_DOCUMENT_BYTES = 1 << 20


class ProviderUnavailable(ServiceUnavailable):
    code = "identity_provider_unavailable"


async def fetch_json(
    http: httpx.AsyncClient, url: str, *, provider: str, max_bytes: int = MAX_DOCUMENT_BYTES
) -> dict[str, Any]:
    """The JSON object at ``url`` (at most ``max_bytes``), or :class:`ProviderUnavailable` /
    :class:`GatewayTimeout`."""
    timeout = http.timeout
    within = sum(t for t in (timeout.connect, timeout.read) if t is not None) or None
    try:
        async with asyncio.timeout(within):  # a provider dripping its answer: all in this time
            try:
                status, body = await _get(http, url, max_bytes)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                # a pooled connection the provider closed while idle: a GET may go again
                status, body = await _get(http, url, max_bytes)
    except (httpx.TimeoutException, TimeoutError):
        raise GatewayTimeout(f"provider {provider} did not answer in time") from None
    except httpx.HTTPError as exc:
        log.warning("oidc_provider_unreachable", provider=provider, error=type(exc).__name__)
        raise ProviderUnavailable(f"provider {provider} is unavailable") from None
    if status != 200:
        raise ProviderUnavailable(f"provider {provider} answered {status}")
    if body is None:
        raise ProviderUnavailable(f"provider {provider} sent more than {max_bytes} bytes")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise ProviderUnavailable(f"provider {provider} sent no JSON") from None
    if not isinstance(document, dict):
        raise ProviderUnavailable(f"provider {provider} sent no JSON object")
    return document


async def _get(http: httpx.AsyncClient, url: str, max_bytes: int) -> tuple[int, bytes | None]:
    """The status and body of a GET (None: longer than ``max_bytes``, the rest left unread)."""
    async with http.stream("GET", url, headers={"accept": "application/json"}) as response:
        if response.status_code != 200:
            return response.status_code, b""
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            return 200, None
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > max_bytes:
                return 200, None
    return 200, bytes(body)


def keys_url(meta: dict[str, Any], *, provider: str) -> str:
    """The ``jwks_uri`` a provider's discovery names: https, or plain http on loopback only (the
    rule configured URLs follow), else :class:`ProviderUnavailable`."""
    url = meta.get("jwks_uri")
    if isinstance(url, str):
        parts = urlsplit(url)
        loopback = parts.scheme == "http" and is_loopback(parts.hostname or "")
        if parts.netloc and (parts.scheme == "https" or loopback):
            return url
    raise ProviderUnavailable(f"provider {provider}'s discovery names no https jwks_uri")


class KeyCache:
    """One provider's keys. ``fetch`` gives its JWKS document (it raises
    :class:`ProviderUnavailable` or :class:`GatewayTimeout` when the provider is unavailable)."""

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
        self._fetched_at = -math.inf  # the last fetch that gave keys
        self._refetched_at = -math.inf  # the last fetch an unknown key id started
        self._failed_at = -math.inf  # the last fetch that failed ...
        self._failure: SeedosError | None = None  # ... and how, until one succeeds
        self._inflight: asyncio.Task[None] | None = None

    async def for_token(self, token: str) -> KeySet:
        """The keys to verify ``token`` with (which may still lack its key id)."""
        return await self.for_kid(kid_of(token))

    async def for_kid(self, kid: str | None) -> KeySet:
        """The keys to verify a token naming ``kid`` with. They may still lack it: the token is
        then refused as naming an unknown key. 503 (504) when no keys could be fetched, or
        while backing off after a failed fetch for a key id the held keys lack."""
        keys = self._keys
        if keys is not None and has_kid(keys, kid):
            if not self._young() and not self._backing_off():
                self._start()  # in the background: these keys serve meanwhile
            return keys
        task = self._inflight
        if task is None:
            if self._backing_off():
                raise self._unavailable()
            if keys is not None and self._young() and not self._may_refetch():
                return keys  # refetched within the minute: an unknown key
            if keys is not None:
                self._refetched_at = time.monotonic()
            task = self._start()
        await asyncio.shield(task)
        keys = self._keys
        if self._failure is not None and (keys is None or not has_kid(keys, kid)):
            raise type(self._failure)(self._failure.detail)
        assert keys is not None
        return keys

    async def close(self) -> None:
        """Stop a fetch under way (the service is stopping)."""
        task = self._inflight
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _start(self) -> asyncio.Task[None]:
        """The fetch under way, or a new one."""
        if self._inflight is None:
            self._inflight = asyncio.create_task(self._load(), name=f"jwks {self._provider}")
            self._inflight.add_done_callback(_log_unexpected)
        return self._inflight

    def _may_refetch(self) -> bool:
        return time.monotonic() - self._refetched_at >= self._refetch_every

    def _young(self) -> bool:
        return time.monotonic() - self._fetched_at < self._max_age

    def _backing_off(self) -> bool:
        return self._failure is not None and self._retry_in() > 0

    def _retry_in(self) -> float:
        return self._failed_at + self._refetch_every - time.monotonic()

    def _unavailable(self) -> ProviderUnavailable:
        retry = max(1, math.ceil(self._retry_in()))
        return ProviderUnavailable(
            f"provider {self._provider}'s keys could not be fetched: next try in {retry} s",
            headers={"Retry-After": str(retry)},
        )

    async def _load(self) -> None:
        """Fetch the keys; a failure is kept (the callers waiting raise it), never raised."""
        try:
            document = await self._fetch()
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (ProviderUnavailable, GatewayTimeout) as exc:
            failure: SeedosError = exc
        except (JoseError, ValueError, TypeError, KeyError, AttributeError):
            failure = ProviderUnavailable(f"provider {self._provider} sent no usable keys")
        else:
            self._keys, self._fetched_at, self._failure = keys, time.monotonic(), None
            return
        finally:
            self._inflight = None
        log.warning("jwks_fetch_failed", provider=self._provider, error=failure.code,
                    keys_held=self._keys is not None)  # fmt: skip
        self._failure, self._failed_at = failure, time.monotonic()


def _log_unexpected(task: asyncio.Task[None]) -> None:
    """A fetch that raised what :meth:`KeyCache._load` does not keep (a bug), logged even when
    nobody waited for it (a background refresh)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("jwks_fetch_crashed", error=type(exc).__name__)


def kid_of(token: str) -> str | None:
    try:
        kid = extract_compact(token.encode()).headers().get("kid")
    except (JoseError, ValueError):
        return None
    return kid if isinstance(kid, str) else None


def has_kid(keys: KeySet, kid: str | None) -> bool:
    return kid is None or any(key.kid == kid for key in keys.keys)
