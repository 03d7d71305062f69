"""The connector contract served from a :class:`~seedos_sdk.connector.Connector` definition.

``GET /manifest``, ``POST /check``, ``POST /streams/{stream}/read``,
``POST /streams/{stream}/write``, ``POST /actions/{name}``, ``GET /healthz``, ``GET /metrics``.
Every request body is validated against the declared schemas (422 problem+json otherwise);
errors carry a ``category`` (retryable, permanent, skippable) the caller acts on.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import jsonschema
import orjson
import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from seedos_sdk import metrics
from seedos_sdk.connector import Connector, Context, Page, WriteResult
from seedos_sdk.errors import (
    Category,
    ConnectorError,
    InvalidOutput,
    RequestInvalid,
    RetryableError,
)
from seedos_sdk.http import HttpClient
from seedos_sdk.idempotency import IdempotencyStore
from seedos_sdk.logging import configure_logging

log = structlog.get_logger(component="seedos_sdk.server")
PROBLEM = "application/problem+json"
MAX_BODY = 16 * 1024 * 1024

_ENVELOPE: dict[str, Any] = {
    "type": "object",
    "properties": {"config": {"type": "object"}, "credentials": {"type": "object"}},
    "required": ["config"],
    "additionalProperties": False,
}


def _envelope(**extra: Any) -> dict[str, Any]:
    """The request envelope with more properties; unknown keys (typos) are refused."""
    return {**_ENVELOPE, "properties": {**_ENVELOPE["properties"], **extra}}


_READ = _envelope(cursor={"type": ["string", "null"], "maxLength": 4096})
_WRITE = {
    **_envelope(
        upserts={"type": "array", "items": {"type": "object"}, "maxItems": 10_000},
        deletes={"type": "array", "items": {"type": "string"}, "maxItems": 10_000},
    ),
    "anyOf": [{"required": ["upserts"]}, {"required": ["deletes"]}],
}
_ACTION = {**_envelope(input={}), "required": ["config", "input"]}


class JSON(JSONResponse):
    """JSON rendered with orjson: a 1,000-record page renders several times faster."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=str)


def _problem(exc: ConnectorError, instance: str) -> JSONResponse:
    headers = {}
    if isinstance(exc, RetryableError) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return JSON(exc.problem(instance), status_code=exc.status, media_type=PROBLEM, headers=headers)


_FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


def _validate(
    instance: Any,
    schema: dict[str, Any],
    what: str,
    *,
    error: type[ConnectorError] = RequestInvalid,
    secrets: frozenset[str] = frozenset(),
) -> None:
    errors = sorted(
        jsonschema.Draft202012Validator(schema, format_checker=_FORMATS).iter_errors(instance),
        key=lambda e: list(e.path),
    )
    if errors:
        problems = [
            {"path": "/" + "/".join(str(p) for p in e.path), "message": _message(e, secrets)}
            for e in errors[:20]
        ]
        raise error(
            f"{what} is invalid: "
            + "; ".join(f"{p['path']}: {p['message']}" for p in problems[:3]),
            errors=problems,
        )


def _message(e: jsonschema.ValidationError, secrets: frozenset[str]) -> str:
    """jsonschema quotes the offending value; for a secret field, say only what rule failed."""
    if e.path and e.path[0] in secrets:
        return f"the value breaks the field's {e.validator!r} rule"
    return e.message


class ContractApp:
    """Holds the connector and serves its contract (see module docstring)."""

    def __init__(self, connector: Connector, *, debug: bool = False) -> None:
        self.connector = connector
        self.debug = debug
        self.idempotency = IdempotencyStore()
        self.clients = ClientPool()
        self._config_schema = connector.config_schema
        self._secret_fields = frozenset(connector.secret_fields())

    # ----------------------------------------------------------------- plumbing

    async def _body(self, request: Request, schema: dict[str, Any]) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise RequestInvalid("request body too large", code="payload_too_large")
        try:
            body = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError:
            raise RequestInvalid("the request body is not JSON", code="invalid_json") from None
        _validate(body, schema, "the request body")
        return body

    def _context(self, body: dict[str, Any]) -> Context:
        config = body.get("config") or {}
        credentials = body.get("credentials") or {}
        secrets = {k: credentials[k] for k in self._secret_fields if k in credentials}
        _validate({**config, **secrets}, self._config_schema, "config", secrets=self._secret_fields)
        ctx = Context(config=config, credentials=credentials, connector=self.connector)
        ctx.http = self.clients.get(config, credentials, lambda: self._new_client(ctx))
        return ctx

    def _new_client(self, ctx: Context) -> HttpClient:
        if self.connector.http_factory is not None:
            return self.connector.http_factory(ctx)
        base = self.connector.base_url
        url = base(ctx) if callable(base) else (base or "")
        return HttpClient(base_url=url, connector=self.connector.name)

    async def _timed(
        self, operation: str, request: Request, handler: Callable[[], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        outcome = "ok"
        try:
            return await handler()
        except ConnectorError as exc:
            outcome = exc.category.value
            log.warning("contract_error", operation=operation, code=exc.code, error=exc.message)
            return _problem(exc, request.url.path)
        except Exception:
            outcome = "error"
            log.exception("contract_failure", operation=operation)
            body = {"type": "urn:seedos:problem:internal_error", "title": "Internal error",
                    "status": 500, "code": "internal_error", "category": "retryable",
                    "retryable": True, "instance": request.url.path}  # fmt: skip
            return JSON(body, status_code=500, media_type=PROBLEM)
        finally:
            metrics.CONTRACT_REQUESTS.labels(self.connector.name, operation, outcome).observe(
                time.perf_counter() - start
            )

    # ----------------------------------------------------------------- endpoints

    async def manifest(self, _request: Request) -> Response:
        return JSON(self.connector.manifest())

    async def healthz(self, _request: Request) -> Response:
        return JSON({"status": "ok", "connector": self.connector.name})

    async def metrics(self, _request: Request) -> Response:
        # in a worker thread: rendering many label sets would stall requests in flight
        body, content_type = await run_in_threadpool(metrics.exposition)
        return Response(body, media_type=content_type)

    async def check(self, request: Request) -> Response:
        async def handle() -> Response:
            ctx = self._context(await self._body(request, _ENVELOPE))
            if self.connector.check_fn is not None:
                await self.connector.check_fn(ctx)
            return JSON({"ok": True})

        return await self._timed("check", request, handle)

    async def read(self, request: Request) -> Response:
        async def handle() -> Response:
            stream = self._stream(request)
            body = await self._body(request, _READ)
            ctx = self._context(body)
            pages = stream.read(ctx, body.get("cursor"))
            try:
                page = await anext(pages, None) or Page(
                    next_cursor=body.get("cursor"), has_more=False
                )
            finally:
                await pages.aclose()
            if self.debug:
                for record in page.records:
                    _validate(record, stream.schema, f"a {stream.name} record", error=InvalidOutput)
            name = self.connector.name
            metrics.RECORDS_READ.labels(name, stream.name).inc(len(page.records))
            metrics.RECORDS_DELETED.labels(name, stream.name).inc(len(page.deleted))
            return JSON(page.as_contract())

        return await self._timed("read", request, handle)

    async def write(self, request: Request) -> Response:
        async def handle() -> Response:
            stream = self._stream(request)
            if stream.write is None:
                raise RequestInvalid(f"stream {stream.name!r} is read-only", code="not_writable")
            body = await self._body(request, _WRITE)
            upserts, deletes = body.get("upserts", []), body.get("deletes", [])
            for i, record in enumerate(upserts):
                _validate(record, stream.schema, f"upserts[{i}]")
                if record.get(stream.primary_key) in (None, ""):
                    raise RequestInvalid(f"upserts[{i}] has no {stream.primary_key!r}")
            ctx = self._context(body)
            results = await stream.write(ctx, upserts, deletes)
            expected = [str(r[stream.primary_key]) for r in upserts] + [str(k) for k in deletes]
            if [str(r.key) for r in results] != expected:
                raise InvalidOutput(
                    f"write {stream.name}: results must name every upsert, then every delete, in"
                    " order"
                )
            counts: dict[str, int] = {}
            for r in results:
                outcome = "ok" if r.ok else _category(r).value
                counts[outcome] = counts.get(outcome, 0) + 1
            for outcome, n in counts.items():
                metrics.RECORDS_WRITTEN.labels(self.connector.name, stream.name, outcome).inc(n)
            return JSON({"results": [_result(r) for r in results]})

        return await self._timed("write", request, handle)

    async def action(self, request: Request) -> Response:
        async def handle() -> Response:
            name = request.path_params["name"]
            action = self.connector.actions.get(name)
            if action is None:
                raise RequestInvalid(f"no action {name!r}", code="unknown_action", status=404)
            body = await self._body(request, _ACTION)
            _validate(body["input"], action.input_schema, "input")
            ctx = self._context(body)

            async def run() -> dict[str, Any]:
                output = await action.run(ctx, body["input"])
                if self.debug:
                    _validate(
                        output, action.output_schema, "the action's output", error=InvalidOutput
                    )
                return output

            key = request.headers.get("idempotency-key")
            if key:
                install = self.clients.key(ctx.config, ctx.credentials)
                output, replayed = await self.idempotency.run(
                    key, name, body["input"], run, scope=install
                )
            else:
                output, replayed = await run(), False
            headers = {"Idempotent-Replayed": "true"} if replayed else {}
            return JSON({"output": output}, headers=headers)

        return await self._timed("action", request, handle)

    def _stream(self, request: Request) -> Any:
        name = request.path_params["stream"]
        stream = self.connector.streams.get(name)
        if stream is None:
            raise RequestInvalid(f"no stream {name!r}", code="unknown_stream", status=404)
        return stream


def _category(r: WriteResult) -> Category:
    """A failed item's category; unknown or missing means skippable (the batch goes on)."""
    try:
        return Category(r.category) if r.category else Category.skippable
    except ValueError:
        return Category.skippable


def _result(r: WriteResult) -> dict[str, Any]:
    out: dict[str, Any] = {"key": r.key, "ok": r.ok}
    if not r.ok:
        out |= {"error": r.error, "category": _category(r).value}
    if r.record is not None:
        out["record"] = r.record
    return out


class ClientPool:
    """HTTP clients for the external API, reused across contract calls with the same config and
    credentials (keep-alive connections instead of a new one per page).

    A client unused for ``idle_seconds`` is dropped (so rotated or revoked credentials do not
    linger in memory), as are the least recently used beyond ``size``; a dropped client is
    closed ``grace_seconds`` later, so a call still using it can finish. All are closed when the
    app stops."""

    def __init__(
        self, size: int = 256, *, idle_seconds: float = 300.0, grace_seconds: float = 60.0
    ) -> None:
        self.size = size
        self.idle_seconds = idle_seconds
        self.grace_seconds = grace_seconds
        self._clients: OrderedDict[str, tuple[HttpClient, float]] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    @staticmethod
    def key(config: Mapping[str, Any], credentials: Mapping[str, Any]) -> str:
        """A digest identifying one install's config and credentials (never stored in clear)."""
        canonical = orjson.dumps([config, credentials], option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()

    def get(
        self,
        config: Mapping[str, Any],
        credentials: Mapping[str, Any],
        make: Callable[[], HttpClient],
    ) -> HttpClient:
        now = time.monotonic()
        key = self.key(config, credentials)
        entry = self._clients.pop(key, None)
        client = entry[0] if entry else make()
        self._clients[key] = (client, now)  # most recently used last
        while True:
            oldest_key, (oldest, used) = next(iter(self._clients.items()))
            if oldest_key == key or (
                len(self._clients) <= self.size and now - used < self.idle_seconds
            ):
                break
            del self._clients[oldest_key]
            self._close_later(oldest)
        return client

    def _close_later(self, client: HttpClient) -> None:
        async def close() -> None:
            await asyncio.sleep(self.grace_seconds)
            await client.aclose()

        task = asyncio.get_running_loop().create_task(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        clients, self._clients = [c for c, _ in self._clients.values()], OrderedDict()
        for task in list(self._closing):
            task.cancel()
        for client in clients:
            await client.aclose()


def create_app(
    connector: Connector, *, debug: bool | None = None, log_level: str = "INFO"
) -> Starlette:
    """The ASGI app of a connector. ``debug`` (or ``SEEDOS_CONNECTOR_DEBUG=1``) also checks every
    record read and every action output against its schema."""
    if debug is None:
        debug = os.environ.get("SEEDOS_CONNECTOR_DEBUG", "") in ("1", "true", "yes")
    configure_logging(level=os.environ.get("SEEDOS_LOG_LEVEL", log_level), service=connector.name)
    contract = ContractApp(connector, debug=debug)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await contract.clients.aclose()

    app = Starlette(
        lifespan=lifespan,
        routes=[
            Route("/manifest", contract.manifest, methods=["GET"]),
            Route("/healthz", contract.healthz, methods=["GET"]),
            Route("/metrics", contract.metrics, methods=["GET"]),
            Route("/check", contract.check, methods=["POST"]),
            Route("/streams/{stream}/read", contract.read, methods=["POST"]),
            Route("/streams/{stream}/write", contract.write, methods=["POST"]),
            Route("/actions/{name}", contract.action, methods=["POST"]),
        ],
    )
    app.state.contract = contract
    app.add_exception_handler(HTTPException, _http_problem)
    return app


async def _http_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    body = {"type": "about:blank", "title": exc.detail, "status": exc.status_code,
            "code": "not_found" if exc.status_code == 404 else "method_not_allowed",
            "instance": request.url.path}  # fmt: skip
    return JSONResponse(body, status_code=exc.status_code, media_type=PROBLEM)
