"""The HTTP client connectors use for the external API.

Timeouts, and retries with exponential backoff and full jitter (tenacity's
``wait_random_exponential``) on what is worth retrying: 429 (waiting as long as ``Retry-After``
says), 5xx, connection errors and timeouts. Other 4xx are permanent and never retried. Every
attempt is timed and counted in Prometheus, and a retry is logged without secrets.

With an address rule (``egress=``, :mod:`seedos_sdk.egress`), every connection is checked when
it is made: the host resolved once, refused unless every address passes, and connected to one
of exactly those addresses, never through a proxy from the environment. A refusal is a
:class:`~seedos_sdk.errors.PermanentError` with the code ``egress_refused``, naming the host and
the setting; nothing was sent.
"""

from __future__ import annotations

import email.utils
import functools
import math
import ssl
import time
from collections.abc import Mapping
from typing import Any

import httpx
import orjson
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from seedos_sdk import metrics
from seedos_sdk.egress import AddressNotAllowed, AddressPolicy, CheckedTransport
from seedos_sdk.errors import AuthError, PermanentError, RetryableError
from seedos_sdk.redaction import scrub

log = structlog.get_logger(component="seedos_sdk.http")
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
# httpx's own default pool, for the checked transport an address rule brings
POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)  # 400 digits are inf: no time anyone can wait or say
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


class _RetryAfterOrFullJitter:
    """tenacity wait: the server's Retry-After when it gave one, else full jitter."""

    def __init__(self, *, initial: float, maximum: float) -> None:
        self.fallback = wait_random_exponential(multiplier=initial, max=maximum)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableError) and exc.retry_after is not None:
            return exc.retry_after
        return self.fallback(state)


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One verifying TLS context (the system's CA bundle) for every client in the process."""
    return ssl.create_default_context()


def _status_class(status: int | None) -> str:
    return f"{status // 100}xx" if status else "error"


class HttpClient:
    """An ``httpx.AsyncClient`` with the suite's retry policy, metrics and error classes.

    Args:
        base_url: the external API's root.
        headers: sent with every request (authentication goes here or in ``auth``).
        auth: an ``httpx`` auth (e.g. ``httpx.BasicAuth``).
        timeout: seconds for connect, read and write each.
        max_attempts: total attempts for a retryable failure (1 disables retries).
        backoff_initial, backoff_max: full-jitter window: ``uniform(0, min(max, initial*2^n))``.
        max_retry_after: a Retry-After longer than this is not waited for; the error is raised.
        total_timeout: give up retrying after this many seconds in all.
        connector: the connector's name, for metrics labels.
        transport: an ``httpx`` transport (tests).
        verify: TLS verification: an ``ssl.SSLContext``, or False; default the system's CAs.
        egress: an address rule (e.g. :func:`seedos_sdk.egress.egress_policy`) every
            connection must pass, checked when connecting; not with ``transport``.
    """

    def __init__(
        self,
        *,
        base_url: str = "",
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        timeout: float = 10.0,
        max_attempts: int = 5,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 60.0,
        total_timeout: float = 120.0,
        connector: str = "connector",
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | bool | None = None,
        egress: AddressPolicy | None = None,
    ) -> None:
        # httpx builds a new SSL context (loading every CA) per client unless given one:
        # 47 ms of a 100 ms page read on this machine. One per process does.
        context = shared_ssl_context() if verify is None else verify
        if egress is not None:
            if transport is not None:
                raise TypeError("pass egress or transport, not both")
            if not isinstance(context, ssl.SSLContext):
                context = httpx.create_ssl_context(verify=context)
            transport = CheckedTransport(egress, limits=POOL_LIMITS, ssl_context=context)
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=dict(headers or {}),
            auth=auth,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            # never: httpx keeps custom auth headers (X-API-Key ...) across origins
            follow_redirects=False,
            verify=context,
            trust_env=egress is None,  # with a rule: no proxy (nor anything) from the environment
        )
        self.max_attempts = max_attempts
        self.max_retry_after = max_retry_after
        self.total_timeout = total_timeout
        self.connector = connector
        self._wait = _RetryAfterOrFullJitter(initial=backoff_initial, maximum=backoff_max)

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", url, **kw)

    async def get_json(self, url: str, **kw: Any) -> Any:
        """GET and parse the JSON answer (with orjson: several times faster on large pages)."""
        response = await self.request("GET", url, **kw)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise PermanentError(
                f"GET {_path(url)} did not answer JSON", code="unexpected_response"
            ) from None

    async def post(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("POST", url, **kw)

    async def put(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("PUT", url, **kw)

    async def patch(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("PATCH", url, **kw)

    async def delete(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kw)

    async def request(
        self, method: str, url: str, *, retry: bool | None = None, **kw: Any
    ) -> httpx.Response:
        """Send a request; return the 2xx/3xx response or raise a :mod:`seedos_sdk.errors`
        error. ``retry`` defaults to True for idempotent methods only: pass True for a POST
        that carries an idempotency key."""
        method = method.upper()
        should_retry = method in IDEMPOTENT_METHODS if retry is None else retry
        attempts = self.max_attempts if should_retry else 1
        retrying = AsyncRetrying(
            retry=retry_if_exception(self._worth_retrying),
            stop=stop_after_attempt(attempts) | stop_after_delay(self.total_timeout),
            wait=self._wait,
            before_sleep=self._log_retry(method, url),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._once(method, url, **kw)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, method: str, url: str, **kw: Any) -> httpx.Response:
        start = time.perf_counter()
        status: int | None = None
        try:
            response = await self._client.request(method, url, **kw)
            status = response.status_code
        except httpx.TimeoutException as exc:
            raise self._count(
                RetryableError(f"{method} {_path(url)} timed out", code="timeout")
            ) from exc
        except AddressNotAllowed as exc:
            raise self._count(
                PermanentError(f"{method} {_path(url)} refused: {exc}", code="egress_refused")
            ) from None
        except httpx.TransportError as exc:
            raise self._count(
                RetryableError(
                    f"{method} {_path(url)}: {type(exc).__name__}", code="connection_error"
                )
            ) from exc
        finally:
            metrics.OUTBOUND_LATENCY.labels(self.connector, method, _status_class(status)).observe(
                time.perf_counter() - start
            )
        if status < 400:
            return response
        raise self._count(self._error(method, url, response))

    def _error(self, method: str, url: str, response: httpx.Response) -> Exception:
        status = response.status_code
        where = f"{method} {_path(url)} answered {status}"
        body = scrub(response.text[:300])
        if status in RETRYABLE_STATUS:
            wait = parse_retry_after(response.headers.get("retry-after"))
            if wait is not None and wait > self.max_retry_after:
                return RetryableError(
                    f"{where}; Retry-After {wait:g} s is longer than this client waits",
                    retry_after=wait, code="rate_limited", status_code=status,
                )  # fmt: skip
            code = "rate_limited" if status == 429 else "upstream_unavailable"
            return RetryableError(where, retry_after=wait, code=code, status_code=status)
        if status in (401, 403):
            return AuthError(f"{where}: credentials refused", status_code=status)
        return PermanentError(f"{where}: {body}", code="upstream_rejected", status_code=status)

    def _worth_retrying(self, exc: BaseException) -> bool:
        """Retryable, and not asked to wait longer than this client is willing to."""
        if not isinstance(exc, RetryableError):
            return False
        return exc.retry_after is None or exc.retry_after <= self.max_retry_after

    def _count(self, exc: RetryableError | PermanentError) -> Exception:
        metrics.OUTBOUND_ERRORS.labels(self.connector, exc.category.value).inc()
        return exc

    def _log_retry(self, method: str, url: str) -> Any:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else None
            log.warning(
                "retrying", method=method, path=_path(url), attempt=state.attempt_number,
                wait_s=round(wait or 0, 3), error=str(exc),
            )  # fmt: skip

        return before_sleep


def _path(url: str) -> str:
    """The URL without its query string (which may carry tokens)."""
    return url.split("?", 1)[0]
