"""Every authentication or authorization failure at the gateway: logged and counted, by how
the caller authenticated (``method``) and a short, bounded ``reason``."""

from __future__ import annotations

import structlog
from prometheus_client import Counter

AUTH_FAILURES = Counter(
    "seedos_auth_failures",
    "Authentication and authorization failures at the gateway, by method and reason.",
    ["method", "reason"],
)
log = structlog.get_logger(component="seedos.gateway.auth")

METHODS = frozenset({"api_key", "session", "oidc", "development", "invitation", "none"})


def record(method: str, reason: str, **context: object) -> None:
    """Count and log one failure. ``reason`` is one of a fixed set of words chosen by the code
    (never caller input), so the label stays bounded."""
    AUTH_FAILURES.labels(method if method in METHODS else "none", reason).inc()
    log.info("auth_failed", method=method, reason=reason, **context)
