"""ConnectorManager: every call from connector_service to a connector goes through here.

Per call: the install must be enabled and deployed, its endpoint must pass the allowed-address
rule (common/endpoints.py), its circuit must let the call through; the credentials are decrypted
(and OAuth tokens refreshed) just for the call; the call has a timeout; it is retried with full
jitter only where that is safe (check, read and write are idempotent; an action only with an
Idempotency-Key, which the connector honours), and only for failures worth retrying; an answer
of 401 (credentials refused) is answered by refreshing an OAuth token once. Every call is
measured (recorder.py).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from common import endpoints
from common.endpoints import EndpointNotAllowed, EndpointPolicy
from connector_service.manager import errors
from connector_service.manager.breaker import Admission, Breakers
from connector_service.manager.recorder import CALL_RETRIES, OPEN_CIRCUITS, Call, Recorder
from connector_service.manager.transport import CheckedTransport

log = structlog.get_logger(component="connector_service.manager")

# (target, the access token the connector refused with a 401, if it did) -> the credentials
# the connector receives.
CredentialSource = Callable[["Target", str | None], Awaitable[dict[str, str]]]
# Told when an install's connector stops working (its circuit opened: True, with the error) or
# works again (a call succeeded while the install was in ``error``: False), to move its status.
CircuitListener = Callable[["Target", bool, str], Awaitable[None]]


@dataclass(frozen=True)
class Target:
    """An installed connector as the manager calls it."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    connector_name: str
    service_name: str
    status: str
    config: Mapping[str, Any]
    endpoint_url: str | None
    manifest: Mapping[str, Any] = field(default_factory=dict)
    version: str | None = None  # the published version the install is pinned to
    withdrawn: str | None = None  # why its publisher withdrew that version, if they did

    @property
    def auth_scheme(self) -> str:
        return str((self.manifest.get("auth") or {}).get("scheme", "none"))


@dataclass(frozen=True)
class Timeouts:
    """Budgets in seconds for a whole call, retries included. ``check`` and ``call`` (actions)
    answer API requests, so they stay under the gateway's upstream timeout; ``sync`` is for
    reads and writes, which sync runs in the background."""

    connect: float
    check: float
    call: float
    sync: float


class ConnectorManager:
    def __init__(
        self,
        *,
        policy: EndpointPolicy,
        breakers: Breakers,
        recorder: Recorder,
        credentials: CredentialSource,
        timeouts: Timeouts,
        max_attempts: int,
        on_circuit: CircuitListener | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.policy = policy
        self.breakers = breakers
        self.recorder = recorder
        self._credentials = credentials
        self._timeouts = timeouts
        self._max_attempts = max_attempts
        self._on_circuit = on_circuit
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeouts.call, connect=timeouts.connect),
            follow_redirects=False,
            trust_env=False,
            transport=transport or CheckedTransport(policy, limits=limits),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def circuit(self, integration_id: uuid.UUID) -> dict[str, Any]:
        return self.breakers.snapshot(integration_id)

    # ------------------------------------------------------------------ operations

    async def check(self, target: Target) -> None:
        await self._call(target, "check", "/check", {}, safe=True, deadline=self._timeouts.check)

    async def read(self, target: Target, stream: str, cursor: str | None) -> dict[str, Any]:
        path = f"/streams/{quote(stream, safe='')}/read"
        page = await self._call(
            target, "read", path, {"cursor": cursor}, safe=True, deadline=self._timeouts.sync
        )
        if not isinstance(page.get("records"), list):
            raise errors.InvalidConnectorResponse("a read answered without a records list")
        return page

    async def write(
        self, target: Target, stream: str, upserts: list[dict[str, Any]], deletes: list[str]
    ) -> dict[str, Any]:
        """Upserts and deletes by primary key are idempotent, so a write may be retried."""
        path = f"/streams/{quote(stream, safe='')}/write"
        body: dict[str, Any] = {}
        if upserts:
            body["upserts"] = upserts
        if deletes:
            body["deletes"] = deletes
        return await self._call(
            target, "write", path, body, safe=True, deadline=self._timeouts.sync
        )

    async def action(
        self, target: Target, name: str, data: Any, *, idempotency_key: str | None
    ) -> dict[str, Any]:
        path = f"/actions/{quote(name, safe='')}"
        # Scoped to the install: two installs with identical config (or none) and the same
        # client key must not share the connector's stored result.
        headers = {"Idempotency-Key": f"{target.id}:{idempotency_key}"} if idempotency_key else {}
        return await self._call(
            target, "action", path, {"input": data}, safe=idempotency_key is not None,
            headers=headers,
        )  # fmt: skip

    # ------------------------------------------------------------------ the call

    async def _call(
        self,
        target: Target,
        operation: str,
        path: str,
        body: dict[str, Any],
        *,
        safe: bool,
        deadline: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        start = time.perf_counter()
        budget = deadline or self._timeouts.call
        error_class: str | None = None
        records = 0
        admission = None
        try:
            self.admit(target)
            admission = self.breakers.acquire(target.id)
            if admission.wait is not None:
                raise errors.CircuitOpen(
                    f"{target.connector_name}: the circuit is open after repeated failures;"
                    f" next probe in {admission.wait:.0f} s",
                    retry_after=admission.wait,
                )
            try:
                async with asyncio.timeout(budget):
                    result = await self._send(target, operation, path, body, safe, budget, headers)
            except TimeoutError:
                raise errors.ConnectorTimeout(
                    f"{target.connector_name}: no answer within {budget:g} s"
                ) from None
            records = _count_records(operation, result)
        except (EndpointNotAllowed, errors.CircuitOpen, errors.NotDeployed,
                errors.IntegrationDisabled, errors.Busy) as exc:  # fmt: skip
            error_class = getattr(exc, "error_class", "not_allowed")
            if admission is not None:
                self.breakers.release(target.id, admission.ticket)
            raise
        except errors.ConnectorCallError as exc:
            error_class = exc.error_class
            await self._verdict(target, admission, exc)  # type: ignore[arg-type]
            raise
        except BaseException as exc:
            # Not the connector's answer: our own failure (e.g. the credentials could not be
            # loaded, an OAuth refresh was refused) or a cancelled request.
            error_class = getattr(exc, "code", None) or "internal"
            if admission is not None:
                self.breakers.release(target.id, admission.ticket)
            raise
        else:
            self.breakers.success(target.id, admission.ticket)
            if target.status == "error":
                await self._notify(target, False, "")
            return result
        finally:
            OPEN_CIRCUITS.set(self.breakers.open_count())
            self.recorder.record(
                Call(
                    tenant_id=target.tenant_id, connector_id=target.id,
                    connector_name=target.connector_name, service_name=target.service_name,
                    operation=operation, seconds=time.perf_counter() - start,
                    error_class=error_class, records=records,
                )
            )  # fmt: skip

    def admit(self, target: Target) -> None:
        """What refuses a call before it is attempted (and before any Idempotency-Key is taken)."""
        if target.status == "disabled":
            raise errors.IntegrationDisabled(f"{target.connector_name} is disabled")
        if target.withdrawn is not None:
            raise errors.UpdateRequired.of(target.version, target.withdrawn, before="calling it")
        if not target.endpoint_url:
            raise errors.NotDeployed(
                f"{target.service_name} has no deployed connector (no endpoint URL)"
            )
        self.policy.check_syntax(target.endpoint_url)

    async def _verdict(
        self, target: Target, admission: Admission, exc: errors.ConnectorCallError
    ) -> None:
        if not exc.counts_against_circuit:  # it answered: it is up
            self.breakers.success(target.id, admission.ticket)
            return
        if self.breakers.failure(target.id, admission.ticket, exc.detail or exc.title):
            await self._notify(target, True, exc.detail or exc.title)

    async def _notify(self, target: Target, opened: bool, error: str) -> None:
        """Tell the listener, best effort: a status update that fails (database busy) must not
        turn the connector's answer into another error."""
        if self._on_circuit is None:
            return
        try:
            await self._on_circuit(target, opened, error)
        except Exception as exc:
            log.warning("status_update_failed", integration_id=str(target.id),
                        error=type(exc).__name__)  # fmt: skip

    async def _send(
        self,
        target: Target,
        operation: str,
        path: str,
        body: dict[str, Any],
        safe: bool,
        budget: float,
        headers: dict[str, str] | None,
    ) -> dict[str, Any]:
        url = endpoints.join(target.endpoint_url, path)  # type: ignore[arg-type]
        refused: str | None = None  # the access token a 401 answered, once
        end = time.monotonic() + budget

        def worth_retrying(exc: BaseException) -> bool:
            # A refused connection sent nothing, so it is always safe to try again.
            if isinstance(exc, errors.ConnectorUnavailable) and exc.extra.get("not_sent"):
                return True
            return safe and isinstance(
                exc, errors.ConnectorUnavailable | errors.ConnectorTimeout |
                errors.ConnectorRetryable,
            )  # fmt: skip

        backoff = wait_random_exponential(multiplier=0.2, max=5)

        def wait(state: RetryCallState) -> float:
            # never sleep past the budget: the last failure is the better answer than a timeout
            return max(0.0, min(backoff(state), end - time.monotonic() - 0.2))

        def count_retry(_state: RetryCallState) -> None:
            CALL_RETRIES.labels(target.service_name, operation).inc()

        async for attempt in AsyncRetrying(
            retry=retry_if_exception(worth_retrying),
            stop=stop_after_attempt(self._max_attempts) | stop_before_end(end),
            wait=wait,
            before_sleep=count_retry,
            reraise=True,
        ):
            with attempt:
                while True:
                    credentials = await self._credentials(target, refused)
                    payload = {"config": dict(target.config), "credentials": credentials, **body}
                    remaining = end - time.monotonic()
                    if remaining < 0.05:
                        raise errors.ConnectorTimeout(
                            f"{target.connector_name}: no answer within {budget:g} s"
                        )
                    try:
                        return await self._post(target, url, payload, remaining, headers)
                    except errors.ConnectorAuthFailed:
                        token = credentials.get("access_token")
                        if refused is not None or target.auth_scheme != "oauth2" or not token:
                            raise
                        refused = token  # a 401 is answered by one token refresh
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post(
        self,
        target: Target,
        url: str,
        payload: dict[str, Any],
        deadline: float,
        headers: dict[str, str] | None,
    ) -> dict[str, Any]:
        name = target.connector_name
        try:
            async with asyncio.timeout(deadline):
                response = await self._client.post(
                    url,
                    content=orjson.dumps(payload),
                    headers={"Content-Type": "application/json", **(headers or {})},
                    timeout=httpx.Timeout(deadline, connect=min(deadline, self._timeouts.connect)),
                )
        except httpx.PoolTimeout:
            raise errors.Busy(
                "connector_service has no free connection to connectors right now"
            ) from None
        except httpx.ConnectError as exc:
            raise errors.ConnectorUnavailable(
                f"{name}: cannot connect to the connector ({type(exc).__name__})", not_sent=True
            ) from None
        except httpx.ConnectTimeout:
            raise errors.ConnectorUnavailable(
                f"{name}: connecting to the connector timed out", not_sent=True
            ) from None
        except (httpx.TimeoutException, TimeoutError):
            raise errors.ConnectorTimeout(f"{name}: the connector did not answer in time") from None
        except httpx.TransportError as exc:
            raise errors.ConnectorUnavailable(
                f"{name}: the connection failed ({type(exc).__name__})"
            ) from None
        try:
            answer = orjson.loads(response.content) if response.content else {}
        except orjson.JSONDecodeError:
            answer = None
        if response.is_success:
            if not isinstance(answer, dict):
                raise errors.InvalidConnectorResponse(f"{name}: the answer is not a JSON object")
            return answer
        raise _failure(name, response, answer if isinstance(answer, dict) else {})


def stop_before_end(end: float) -> Any:
    """Stop retrying when too little of the budget is left for another attempt."""

    def stop(_state: RetryCallState) -> bool:
        return end - time.monotonic() < 0.25

    return stop


def _failure(name: str, response: httpx.Response, problem: dict[str, Any]) -> Exception:
    """The connector's answer as one of our errors. Its status, code and category classify it;
    what is shown of it is only what :func:`errors.said` lets through (never an answer body that
    is not a contract problem: the endpoint may be some other service)."""
    status = response.status_code
    code = problem.get("code") if isinstance(problem.get("code"), str) else None
    shown = errors.said(status, response.headers.get("content-type", ""), problem)
    extra: dict[str, Any] = {"connector_status": status, "connector_code": shown.code}
    if shown.errors is not None:
        extra["errors"] = shown.errors
    message = f"{name}: {shown.message}"
    if status == 401:
        return errors.ConnectorAuthFailed(message, **extra)
    if status == 500 and code == "invalid_output":
        return errors.InvalidConnectorResponse(message, **extra)
    if problem.get("category") == "retryable" or status == 429 or status >= 500:
        headers = {}
        if retry_after := response.headers.get("retry-after"):
            headers["Retry-After"] = retry_after[:32]
        # the connector is up when it passes on a rate limit or a 4xx worth retrying
        counts = status >= 500
        return errors.ConnectorRetryable(message, headers=headers, counts=counts, **extra)
    if status == 404 and code in ("unknown_action", "unknown_stream"):
        return errors.ConnectorRejected(message, status=404, **extra)
    return errors.ConnectorRejected(message, **extra)


def _count_records(operation: str, result: Mapping[str, Any]) -> int:
    keys = {"read": ("records", "deleted"), "write": ("results",)}.get(operation, ())
    return sum(len(v) for k in keys if isinstance(v := result.get(k), list))
