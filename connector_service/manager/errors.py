"""What a call to a connector can end in, as problem+json for the API."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from common.errors import Conflict, GatewayTimeout, SeedosError, ServiceUnavailable


class ConnectorCallError(SeedosError):
    """Base of connector call failures; ``error_class`` is the metrics label."""

    error_class = "permanent"
    counts_against_circuit = False


class ConnectorUnavailable(ConnectorCallError, ServiceUnavailable):
    code, title = "connector_unavailable", "Connector unavailable"
    error_class, counts_against_circuit = "transport", True


class ConnectorTimeout(ConnectorCallError, GatewayTimeout):
    code, title = "connector_timeout", "Connector timed out"
    error_class, counts_against_circuit = "timeout", True


class ConnectorRetryable(ConnectorCallError):
    """The connector (or the system behind it) failed in a way worth retrying later. Only a
    5xx counts against the circuit: a passed-on rate limit means the connector is up."""

    status, code, title = 503, "connector_failed", "Connector failed, retry later"
    error_class = "retryable"

    def __init__(self, detail: str, *, counts: bool = True, **kw: Any) -> None:
        super().__init__(detail, **kw)
        self.counts_against_circuit = counts


class Busy(ConnectorCallError, ServiceUnavailable):
    """No free connection in this service's pool to connectors: ours, not the connector's."""

    code, title = "connector_service_busy", "Too many calls to connectors at once"
    error_class = "busy"


class ConnectorRejected(ConnectorCallError):
    """The connector refused the request and will refuse it again (its problem is passed on)."""

    status, code, title = 422, "connector_rejected", "Connector refused the request"


class ConnectorAuthFailed(ConnectorCallError):
    """The external system refused the install's credentials."""

    status, code, title = 422, "connector_auth_failed", "Credentials refused"
    error_class = "auth"


class InvalidConnectorResponse(ConnectorCallError):
    status, code, title = 502, "invalid_connector_response", "Connector answered nonsense"
    error_class, counts_against_circuit = "invalid_response", True


class CircuitOpen(ConnectorCallError, ServiceUnavailable):
    code, title = "circuit_open", "Connector circuit open"
    error_class = "circuit_open"

    def __init__(self, detail: str, *, retry_after: float, **kw: Any) -> None:
        seconds = max(1, round(retry_after))
        super().__init__(detail, headers={"Retry-After": str(seconds)}, retry_after=seconds, **kw)


class NotDeployed(ConnectorCallError, Conflict):
    code, title = "connector_not_deployed", "No deployed connector"
    error_class = "not_deployed"


class UpdateRequired(ConnectorCallError, Conflict):
    """The install's version was withdrawn by its publisher: nothing is sent to it any more."""

    code, title = "update_required", "This version was withdrawn: upgrade"
    error_class = "update_required"

    @classmethod
    def of(cls, version: str | None, reason: str, *, before: str) -> UpdateRequired:
        """The refusal for an install on ``version``, withdrawn for ``reason``: upgrade it
        ``before`` (calling it, connecting it)."""
        return cls(
            f"version {version} was withdrawn by its publisher ({reason}): upgrade the install"
            f" before {before}",
            reason=reason,
        )


class IntegrationDisabled(ConnectorCallError, Conflict):
    code, title = "integration_disabled", "Integration disabled"
    error_class = "disabled"


# What of a connector's answer may be shown to the tenant (problem details, ``status_reason``,
# ``last_error``). An endpoint is not necessarily a connector: one that is any other HTTP service
# on the connector networks must not have its answers relayed, or the API would read internal
# services for whoever publishes an endpoint URL. So only a contract problem (problem+json with
# the contract's ``category``) has a message shown, short and printable; anything else is known
# by its status code alone. The addresses connected to are never part of a message.
CATEGORIES = frozenset({"retryable", "permanent", "skippable"})
MESSAGE_LIMIT = 160
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Said:
    """What a failed answer says, fit to show: a message, the connector's code, field errors."""

    message: str
    code: str | None = None
    errors: list[dict[str, str]] | None = None


def said(status: int, content_type: str, problem: Mapping[str, Any]) -> Said:
    """The showable part of an answer with ``status`` whose JSON body is ``problem``."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/problem+json" or problem.get("category") not in CATEGORIES:
        return Said(f"answered HTTP {status}")
    text = problem.get("detail") or problem.get("title")
    message = short_text(text) if isinstance(text, str) else None
    found = problem.get("errors")
    fields = None
    if isinstance(found, list):
        fields = [
            {k: short_text(v, 200) or "" for k, v in e.items() if k in ("path", "message")}
            for e in found[:20]
            if isinstance(e, Mapping)
        ]
    return Said(message or f"answered HTTP {status}", safe_code(problem.get("code")), fields)


def safe_code(value: object) -> str | None:
    """A code shaped like one (``invalid_credentials``), else ``None``."""
    return value if isinstance(value, str) and _CODE.match(value) else None


def short_text(value: object, limit: int = MESSAGE_LIMIT) -> str | None:
    """``value`` on one line of printable characters (no control or bidi formatting ones),
    at most ``limit`` long; ``None`` when nothing is left."""
    if not isinstance(value, str):
        return None
    text = " ".join("".join(c if c.isprintable() else " " for c in value[: limit * 4]).split())
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return text or None
