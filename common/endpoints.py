"""Which connector endpoint URLs the suite may call: the allowed-address rule.

connector_service checks it before every call to a connector, and the marketplace applies the
same rule to published endpoint URLs. A URL is allowed when it is http(s), has no user info, and
every address its host resolves to lies in a network of ``SEEDOS_ENDPOINT_ALLOWED_NETWORKS``.

Some ranges are never reached through a broad entry: link-local addresses (where clouds serve
instance metadata and credentials), the metadata addresses themselves, "this network",
multicast and broadcast. An address in one of them is allowed only by an entry at least as
narrow as that range, e.g. ``169.254.169.254/32`` listed on purpose; ``0.0.0.0/0`` does not
cover them.

Names are resolved at check time (results kept for 30 s) and every address must pass, so a
name that also resolves to a refused address is refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from cachetools import TTLCache

from common.errors import InvalidRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Where connectors are deployed by default: this machine and private networks (a cluster).
DEFAULT_ALLOWED = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
# Reached only through an entry at least this narrow.
GUARDED: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",  # IPv4 link-local, incl. 169.254.169.254 (AWS, GCP, Azure metadata)
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS metadata over IPv6 (inside the private fc00::/7)
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "0.0.0.0/8",  # "this network"
        "::/128",
        "224.0.0.0/4",  # multicast
        "ff00::/8",
        "255.255.255.255/32",
    )
)
_RESOLVED: TTLCache[tuple[str, int], tuple[Address, ...]] = TTLCache(maxsize=4096, ttl=30)


class EndpointNotAllowed(InvalidRequest):
    code, title = "endpoint_not_allowed", "Endpoint address not allowed"


def parse_networks(value: str | Iterable[str]) -> tuple[Network, ...]:
    """``"10.0.0.0/8, ::1/128"`` (or a list) as networks; a bad entry raises ValueError."""
    items = value.split(",") if isinstance(value, str) else value
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


class EndpointPolicy:
    def __init__(self, allowed: Iterable[Network]) -> None:
        self.allowed = tuple(allowed)

    def address_allowed(self, address: Address) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        covering = [n for n in self.allowed if n.version == address.version and address in n]
        if not covering:
            return False
        guards = [g for g in GUARDED if g.version == address.version and address in g]
        return all(any(n.prefixlen >= g.prefixlen for n in covering) for g in guards)

    async def check(self, url: str) -> None:
        """Raise :class:`EndpointNotAllowed` unless the suite may call ``url``."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EndpointNotAllowed(f"endpoint {url!r} is not an http(s) URL")
        if parts.username is not None or parts.password is not None:
            raise EndpointNotAllowed("an endpoint URL may not carry user info")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise EndpointNotAllowed(f"endpoint {url!r} has an invalid port") from None
        addresses = await resolve(parts.hostname, port)
        refused = [str(a) for a in addresses if not self.address_allowed(a)]
        if refused or not addresses:
            raise EndpointNotAllowed(
                f"endpoint host {parts.hostname!r} resolves to"
                f" {', '.join(refused) or 'nothing'}, outside SEEDOS_ENDPOINT_ALLOWED_NETWORKS"
            )


async def resolve(host: str, port: int) -> tuple[Address, ...]:
    try:
        return (ipaddress.ip_address(host),)
    except ValueError:
        pass
    cached = _RESOLVED.get((host, port))
    if cached is not None:
        return cached
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise EndpointNotAllowed(f"endpoint host {host!r} does not resolve") from None
    addresses = tuple(
        dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos)
    )
    _RESOLVED[(host, port)] = addresses
    return addresses
