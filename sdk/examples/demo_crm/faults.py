"""Fault injection and request counters, so clients' retries are tested against a real server.

``POST /admin/faults`` queues a fault: the next ``count`` requests whose path starts with one of
its ``paths`` (and whose method is in ``methods``, if given) first wait ``latency_ms`` and then,
if ``status`` is set, fail with it (with ``Retry-After: <retry_after>`` when set). Faults apply in
the order they were added. Every request is counted per path, faulted or not, so a test can tell
how many attempts a client made; ``/admin`` requests are neither faulted nor counted.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

_ERROR_CODES = {
    400: "bad_request",
    429: "rate_limited",
    503: "unavailable",
    504: "timeout",
    502: "bad_gateway",
}


@dataclass
class Fault:
    latency_ms: int
    status: int | None
    remaining: int
    retry_after: int | None
    paths: tuple[str, ...]
    methods: frozenset[str] | None
    fired: int = 0

    def matches(self, path: str, method: str) -> bool:
        return (
            self.remaining > 0
            and any(path.startswith(prefix) for prefix in self.paths)
            and (self.methods is None or method in self.methods)
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "status": self.status,
            "remaining": self.remaining,
            "fired": self.fired,
            "retry_after": self.retry_after,
            "paths": list(self.paths),
            "methods": sorted(self.methods) if self.methods is not None else None,
        }


@dataclass
class Faults:
    """The queued faults and the per-path request counters of one process."""

    queue: list[Fault] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    fired: Counter[str] = field(default_factory=Counter)

    def add(
        self,
        *,
        latency_ms: int,
        status: int | None,
        count: int,
        retry_after: int | None,
        paths: str | list[str],
        methods: list[str] | None,
    ) -> Fault:
        fault = Fault(
            latency_ms=latency_ms,
            status=status,
            remaining=count,
            retry_after=retry_after,
            paths=(paths,) if isinstance(paths, str) else tuple(paths),
            methods=frozenset(m.upper() for m in methods) if methods is not None else None,
        )
        self.queue.append(fault)
        return fault

    def clear(self) -> None:
        self.queue.clear()

    def reset_stats(self) -> None:
        self.requests.clear()
        self.fired.clear()

    def take(self, path: str, method: str) -> Fault | None:
        """Count a request and consume the first fault it matches, if any."""
        self.requests[path] += 1
        for fault in self.queue:
            if fault.matches(path, method):
                fault.remaining -= 1
                fault.fired += 1
                self.fired[path] += 1
                return fault
        return None

    def stats(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "requests_total": self.requests.total(),
            "faults_fired": self.fired.total(),
            "faults_fired_by_path": dict(self.fired),
        }

    def as_json(self) -> dict[str, Any]:
        active = [fault.as_json() for fault in self.queue if fault.remaining > 0]
        return {"faults": active, "remaining": sum(f["remaining"] for f in active)}


class FaultMiddleware:
    """Pure ASGI middleware applying :class:`Faults` before the app sees a request."""

    def __init__(self, app: ASGIApp, *, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/admin"):
            await self.app(scope, receive, send)
            return
        fault = self.faults.take(scope["path"], scope["method"])
        if fault is not None and fault.latency_ms:
            await asyncio.sleep(fault.latency_ms / 1000)
        if fault is None or fault.status is None:
            await self.app(scope, receive, send)
            return
        await _send_error(send, fault)


async def _send_error(send: Send, fault: Fault) -> None:
    assert fault.status is not None
    code = _ERROR_CODES.get(fault.status, "server_error")
    body = json.dumps({"error": code, "message": f"injected fault ({fault.status})"}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if fault.retry_after is not None:
        headers.append((b"retry-after", str(fault.retry_after).encode()))
    await send({"type": "http.response.start", "status": fault.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
