"""Which connector endpoint URLs the suite may call: the allowed-address rule.

connector_service applies it to every connection it opens to a connector (at connect time, to
the very addresses it connects to, so a name that resolves differently later, DNS rebinding,
gains nothing), and the marketplace applies the same rule to published endpoint URLs. A URL is
allowed when it is http(s), has no user info, and every address its host resolves to lies in a
network of ``SEEDOS_ENDPOINT_ALLOWED_NETWORKS``.

Some ranges are never reached through a broad entry: link-local addresses (where clouds serve
instance metadata and credentials), the metadata and host-agent addresses themselves, "this
network", multicast and broadcast. An address in one of them is allowed only by an entry at
least as narrow as that range, e.g. ``169.254.169.254/32`` listed on purpose; ``0.0.0.0/0`` (or
``169.254.0.0/16`` for the metadata address) does not cover them. IPv6 addresses that carry an
IPv4 address (IPv4-mapped and -compatible, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) are
judged by the IPv4 address they lead to.
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
        "169.254.0.0/16",  # IPv4 link-local
        "169.254.169.254/32",  # AWS, GCP, Azure, OpenStack metadata
        "169.254.170.2/32",  # AWS ECS task credentials
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS metadata over IPv6 (inside the private fc00::/7)
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "168.63.129.16/32",  # Azure host agent (WireServer)
        "192.0.0.192/32",  # Oracle Cloud metadata
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
        if isinstance(address, ipaddress.IPv6Address) and (inner := embedded_ipv4(address)):
            return self.address_allowed(inner)
        covering = [n for n in self.allowed if n.version == address.version and address in n]
        if not covering:
            return False
        guards = [g for g in GUARDED if g.version == address.version and address in g]
        return all(any(n.prefixlen >= g.prefixlen for n in covering) for g in guards)

    def check_syntax(self, url: str) -> tuple[str, int]:
        """The URL's host and port, or :class:`EndpointNotAllowed` for what no address can fix
        (not http(s), user info, a bad port)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EndpointNotAllowed(f"endpoint {url!r} is not an http(s) URL")
        if parts.username is not None or parts.password is not None:
            raise EndpointNotAllowed("an endpoint URL may not carry user info")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise EndpointNotAllowed(f"endpoint {url!r} has an invalid port") from None
        return parts.hostname, port

    async def check(self, url: str) -> None:
        """Raise :class:`EndpointNotAllowed` unless the suite may call ``url`` (resolving it)."""
        host, port = self.check_syntax(url)
        self.check_addresses(host, await resolve(host, port))

    def check_addresses(self, host: str, addresses: tuple[Address, ...]) -> None:
        refused = [str(a) for a in addresses if not self.address_allowed(a)]
        if refused or not addresses:
            raise EndpointNotAllowed(
                f"endpoint host {host!r} resolves to {', '.join(refused) or 'nothing'},"
                " outside SEEDOS_ENDPOINT_ALLOWED_NETWORKS"
            )


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPATIBLE = ipaddress.ip_network("::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to, if it carries one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


async def resolve(host: str, port: int, *, cache: bool = True) -> tuple[Address, ...]:
    """The addresses of ``host``; :class:`EndpointNotAllowed` when it does not resolve."""
    try:
        return (ipaddress.ip_address(host.strip("[]")),)
    except ValueError:
        pass
    cached = _RESOLVED.get((host, port)) if cache else None
    if cached is not None:
        return cached
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise EndpointNotAllowed(f"endpoint host {host!r} does not resolve") from None
    addresses = tuple(
        dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos)
    )
    _RESOLVED[(host, port)] = addresses
    return addresses
