"""Request id, one access-log line and Prometheus metrics per request, as one ASGI middleware,
and the ``/metrics`` answer.

Written as plain ASGI rather than ``BaseHTTPMiddleware``: it sits on the gateway's hot path and
must not buffer streaming bodies.

Several uvicorn workers: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder (emptied before each
start) for the whole server. Every worker then writes its values there, and whichever worker
answers ``/metrics`` serves them all, added up (counters, histograms; gauges as each declares in
``multiprocess_mode``). Without it, a worker would answer with its own share only.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import time
import uuid
from typing import Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    multiprocess,
)
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.exposition import Renderer

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UNMATCHED_ROUTE = "<unmatched>"

HTTP_REQUESTS = Counter(
    "seedos_http_requests",
    "HTTP requests served, by route template, method and status.",
    ["service", "route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "seedos_http_request_duration_seconds",
    "Time to serve an HTTP request, by route template and method.",
    ["service", "route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

access_log = structlog.get_logger(component="seedos.access")
# Paths that carry a secret after this prefix (an invitation link's token): logged as the
# prefix and a placeholder, whether or not a route matched (a trailing slash, a typo).
_SECRET_PATHS = ("/auth/invitations/",)


def _loggable_path(path: str, route: str) -> str:
    if "{token}" in route:
        return route
    for prefix in _SECRET_PATHS:
        if path.startswith(prefix):
            return prefix + "{token}"
    return path


def new_request_id(incoming: str | None) -> str:
    """Keep a caller's well-formed request id, otherwise make one."""
    if incoming and _VALID_REQUEST_ID.match(incoming):
        return incoming
    return uuid.uuid4().hex


ROUTE_KEY = "seedos.route"  # set by endpoints that are not ordinary routes (the proxy)


def route_template(scope: Scope) -> str:
    if template := scope.get(ROUTE_KEY):
        return template
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class ObservabilityMiddleware:
    """Binds a request id, returns it in ``X-Request-ID``, counts, times and logs the request."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service
        _forget_at_exit()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = new_request_id(incoming)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        header = (REQUEST_ID_HEADER.encode(), request_id.encode())

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if scope["type"] == "http":
                self._record(scope, status, time.perf_counter() - start)

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        route = route_template(scope)
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        HTTP_REQUESTS.labels(self.service, route, method, str(status)).inc()
        HTTP_LATENCY.labels(self.service, route, method).observe(elapsed)
        if scope["path"] in _QUIET_PATHS and status < 400:
            return
        fields: dict[str, Any] = {
            "method": scope["method"],
            "path": _loggable_path(scope["path"], route),
            "route": route,
            "status": status,
            "duration_ms": round(elapsed * 1000, 2),
        }
        principal = scope.get("state", {}).get("principal")
        if principal is not None:
            fields["tenant_id"] = str(principal.tenant_id)
            fields["role"] = principal.role
        access_log.info("request", **fields)


MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


@functools.cache
def metrics_registry() -> CollectorRegistry:
    """What ``/metrics`` serves: every worker's values when ``PROMETHEUS_MULTIPROC_DIR`` is set
    (read from its files at each scrape), else this process's registry."""
    if not os.environ.get(MULTIPROC_DIR):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


@functools.cache
def _forget_at_exit() -> None:
    """In multiprocess mode, a worker that exits takes its ``live*`` gauges with it (open
    connections, memory held): without this, a dead worker's last values would be added in."""
    if os.environ.get(MULTIPROC_DIR):
        pid = os.getpid()
        atexit.register(lambda: multiprocess.mark_process_dead(pid))


_RENDERER = Renderer()


async def metrics_endpoint(_request: Request) -> Response:
    # Rendered in a worker thread: with many label sets it takes milliseconds
    # (bench/metrics_endpoint.py), which would otherwise stall every request in flight.
    body = await run_in_threadpool(_RENDERER.render, metrics_registry())
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def add_plain_route(app: Any, path: str, endpoint: Any, **kw: Any) -> None:
    """``app.add_route`` that still labels metrics and logs with the route (FastAPI only sets
    the matched route in the scope for its own API routes)."""

    async def labelled(request: Request) -> Response:
        request.scope[ROUTE_KEY] = path
        return await endpoint(request)

    app.add_route(path, labelled, include_in_schema=False, **kw)
