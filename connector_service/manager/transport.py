"""The HTTP transport for outbound calls, with an address rule applied when connecting.

The host is resolved here, every address it resolves to must pass the rule, and the connection
goes to one of exactly those addresses; TLS still verifies the certificate against the host
name. So a name that answers an allowed address when checked and a metadata address when
connected (DNS rebinding) cannot get through, and neither can a proxy from the environment
(``trust_env`` is off). A name that does not resolve is a connection error (worth retrying),
not a refusal. Connector calls go through the connector rule, requests to OAuth providers
through the egress rule (common/endpoints.py).

The transport is the SDK's (:mod:`seedos_sdk.egress`), the one the generic connector calls
external APIs through; given an :class:`~common.endpoints.EndpointPolicy`, it refuses with
:class:`~common.endpoints.EndpointNotAllowed`.
"""

from __future__ import annotations

from seedos_sdk.egress import CheckedBackend, CheckedTransport

__all__ = ["CheckedBackend", "CheckedTransport"]
