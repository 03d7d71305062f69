"""What a call to a connector can end in, as problem+json for the API."""

from __future__ import annotations

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


class IntegrationDisabled(ConnectorCallError, Conflict):
    code, title = "integration_disabled", "Integration disabled"
    error_class = "disabled"
