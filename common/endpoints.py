"""Where the suite's outbound calls may go: the two address rules.

* The **connector** rule (``SEEDOS_ENDPOINT_ALLOWED_NETWORKS``): where connector services run.
  Private networks are normal there; loopback is in its default only in development.
* The **egress** rule (``SEEDOS_EGRESS_ALLOWED_NETWORKS``): calls to the outside world, today the
  OAuth token and revocation URLs of connector manifests. Its default, ``0.0.0.0/0,::/0``, means
  public addresses only; loopback (a local stand-in) must be listed.

The address logic itself (special ranges reached only through entries as narrow as they are,
IPv4 carried in IPv6, ``inet_aton`` spellings, resolution, the transport that checks when
connecting) is the SDK's, :mod:`seedos_sdk.egress`, so the generic connector applies the very
same egress rule without importing the services. Here it raises the services' errors:
:class:`EndpointNotAllowed` (a 422 problem) and :class:`HostNotResolved`.

Each rule is checked when connecting (connector_service/manager/transport.py), on every address
the host resolves to, and the connection goes to one of those very addresses (a name that
resolves differently later, DNS rebinding, gains nothing); the marketplace applies the same
rules to URLs when they are published. A refusal names the host as written and the rule, never
the addresses it resolved to.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from common.errors import InvalidRequest
from seedos_sdk import egress
from seedos_sdk.egress import (
    DEFAULT_EGRESS,
    EGRESS_SETTING,
    GUARDED,
    LOOPBACK,
    PRIVATE,
    Address,
    Network,
    Resolver,
    embedded_ipv4,
    parse_address,
    parse_networks,
)

__all__ = [
    "CONNECTOR_SETTING", "DEFAULT_ALLOWED", "DEFAULT_ALLOWED_PRODUCTION", "DEFAULT_EGRESS",
    "EGRESS_SETTING", "GUARDED", "LOOPBACK", "PRIVATE", "Address", "EndpointNotAllowed",
    "EndpointPolicy", "HostNotResolved", "Network", "Resolver", "embedded_ipv4", "join",
    "parse_address", "parse_networks", "system_resolver",
]  # fmt: skip

CONNECTOR_SETTING = "SEEDOS_ENDPOINT_ALLOWED_NETWORKS"
# The connector rule's default: this machine and private networks in development, private
# networks only in production (loopback then has to be listed).
DEFAULT_ALLOWED = f"{LOOPBACK},{PRIVATE}"
DEFAULT_ALLOWED_PRODUCTION = PRIVATE


class EndpointNotAllowed(InvalidRequest, egress.AddressNotAllowed):
    code, title = "endpoint_not_allowed", "Endpoint address not allowed"


class HostNotResolved(EndpointNotAllowed, egress.HostNotResolved):
    """The host has no address: refused at publish, a connection error (retried) at call time."""


async def system_resolver(host: str, port: int) -> list[str]:
    """getaddrinfo's addresses of ``host``; :class:`HostNotResolved` when it has none."""
    try:
        return await egress.system_resolver(host, port)
    except egress.HostNotResolved as exc:
        raise HostNotResolved(str(exc)) from None


class EndpointPolicy(egress.AddressPolicy):
    """One address rule (:class:`seedos_sdk.egress.AddressPolicy`), the connector rule unless
    told otherwise, refusing with :class:`EndpointNotAllowed` and :class:`HostNotResolved`."""

    refused = EndpointNotAllowed
    unresolved = HostNotResolved
    default_name = "connector"
    default_setting = CONNECTOR_SETTING


def join(endpoint_url: str, path: str) -> str:
    """The URL of the contract's ``path`` (``/check``) under a connector's endpoint URL: the
    endpoint's path as a prefix, never its query or fragment (refused when published, and by
    :meth:`EndpointPolicy.check_syntax` before each call)."""
    parts = urlsplit(endpoint_url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + path, "", ""))
