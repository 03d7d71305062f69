"""Where the suite's outbound calls may go: the two address rules.

* The **connector** rule (``SEEDOS_ENDPOINT_ALLOWED_NETWORKS``): where connector services run.
  Private networks are normal there; loopback is in its default only in development.
* The **egress** rule (``SEEDOS_EGRESS_ALLOWED_NETWORKS``): calls to the outside world, today the
  OAuth token and revocation URLs of connector manifests. Its default, ``0.0.0.0/0,::/0``, means
  public addresses only; loopback (a local stand-in) must be listed.

Each rule is checked when connecting (connector_service/manager/transport.py), on every address
the host resolves to, and the connection goes to one of those very addresses (a name that
resolves differently later, DNS rebinding, gains nothing); the marketplace applies the same
rules to URLs when they are published. A URL passes when it is http(s), has no user info, and
every address its host resolves to lies in a network of the rule.

Special ranges are never reached through a broad entry: loopback, private and shared (CGNAT)
networks, link-local addresses (where clouds serve instance metadata and credentials), the
metadata and host-agent addresses themselves, "this network", multicast, broadcast, and ranges
reserved for protocols, documentation and benchmarks. An address in one of them is allowed only
by an entry at least as narrow as that range, e.g. ``127.0.0.0/8`` or ``169.254.169.254/32``
listed on purpose; ``0.0.0.0/0`` (or ``169.254.0.0/16`` for the metadata address) does not cover
them. IPv6 addresses that carry an IPv4 address (IPv4-mapped and -compatible, NAT64
``64:ff9b::/96``, 6to4 ``2002::/16``) are judged by the IPv4 address they lead to, and hosts
spelled as numbers the way ``inet_aton`` reads them (``0x7f.1``, ``2130706433``, ``127.1``) by
the address they denote.

A refusal names the host as written and the rule, never the addresses it resolved to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import structlog

from common.errors import InvalidRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# A host name's addresses as text (what getaddrinfo answers); only called for names, never for
# addresses written as such. Tests pass one that answers without DNS.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

log = structlog.get_logger(component="seedos.endpoints")

CONNECTOR_SETTING = "SEEDOS_ENDPOINT_ALLOWED_NETWORKS"
EGRESS_SETTING = "SEEDOS_EGRESS_ALLOWED_NETWORKS"
LOOPBACK = "127.0.0.0/8,::1/128"
PRIVATE = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
# The connector rule's default: this machine and private networks in development, private
# networks only in production (loopback then has to be listed).
DEFAULT_ALLOWED = f"{LOOPBACK},{PRIVATE}"
DEFAULT_ALLOWED_PRODUCTION = PRIVATE
# The egress rule's default: every address a wildcard reaches, which is the public ones.
DEFAULT_EGRESS = "0.0.0.0/0,::/0"

# Reached only through an entry at least this narrow.
GUARDED: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",  # loopback
        "::1/128",
        "10.0.0.0/8",  # private
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
        "100.64.0.0/10",  # shared address space (carrier-grade NAT, some clusters)
        "169.254.0.0/16",  # IPv4 link-local
        "169.254.169.254/32",  # AWS, GCP, Azure, OpenStack metadata
        "169.254.170.2/32",  # AWS ECS task credentials
        "fe80::/10",  # IPv6 link-local
        "fec0::/10",  # IPv6 site-local (deprecated, still routed as local)
        "fd00:ec2::254/128",  # AWS metadata over IPv6 (inside the private fc00::/7)
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "168.63.129.16/32",  # Azure host agent (WireServer)
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.0.192/32",  # Oracle Cloud metadata
        "0.0.0.0/8",  # "this network"
        "::/128",
        "224.0.0.0/4",  # multicast
        "ff00::/8",
        "240.0.0.0/4",  # reserved
        "255.255.255.255/32",  # broadcast
        "192.0.2.0/24",  # documentation
        "198.51.100.0/24",
        "203.0.113.0/24",
        "2001:db8::/32",
        "3fff::/20",
        "198.18.0.0/15",  # benchmarking
        "192.88.99.0/24",  # 6to4 relays (deprecated)
        "2001::/23",  # IETF protocol assignments (Teredo included)
        "100::/64",  # discard-only
        "64:ff9b:1::/48",  # local-use NAT64
    )
)


class EndpointNotAllowed(InvalidRequest):
    code, title = "endpoint_not_allowed", "Endpoint address not allowed"


class HostNotResolved(EndpointNotAllowed):
    """The host has no address: refused at publish, a connection error (retried) at call time."""


def parse_networks(value: str | Iterable[str]) -> tuple[Network, ...]:
    """``"10.0.0.0/8, ::1/128"`` (or a list) as networks; a bad entry raises ValueError."""
    items = value.split(",") if isinstance(value, str) else value
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


async def system_resolver(host: str, port: int) -> list[str]:
    """getaddrinfo's addresses of ``host``; :class:`HostNotResolved` when it has none."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise HostNotResolved(f"host {host!r} does not resolve") from None
    return [str(info[4][0]) for info in infos]


class EndpointPolicy:
    """One address rule: its networks, what it is called in messages, and how it resolves."""

    def __init__(
        self,
        allowed: Iterable[Network],
        *,
        name: str = "connector",
        setting: str = CONNECTOR_SETTING,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.allowed = tuple(allowed)
        self.name, self.setting = name, setting
        self._resolver = resolver

    def using(self, resolver: Resolver) -> EndpointPolicy:
        """The same rule resolving names with ``resolver`` (tests: names without DNS)."""
        return EndpointPolicy(self.allowed, name=self.name, setting=self.setting, resolver=resolver)

    def address_allowed(self, address: Address) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and (inner := embedded_ipv4(address)):
            return self.address_allowed(inner)
        covering = [n for n in self.allowed if n.version == address.version and address in n]
        if not covering:
            return False
        guards = [g for g in GUARDED if g.version == address.version and address in g]
        return all(any(n.prefixlen >= g.prefixlen for n in covering) for g in guards)

    def check_syntax(self, url: str, *, fixed_path: bool = True) -> tuple[str, int]:
        """The URL's host and port, or :class:`EndpointNotAllowed` for what no address can fix:
        not http(s), user info, a bad port or host, a fragment. With ``fixed_path`` (a connector
        endpoint, to which the contract's paths are appended) also a query or a ``.``/``..``
        path segment, either of which would move the contract's paths elsewhere."""
        try:
            parts = urlsplit(url)
            hostname = parts.hostname
        except ValueError:
            raise EndpointNotAllowed(f"{url[:200]!r} is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not hostname:
            raise EndpointNotAllowed(f"{url[:200]!r} is not an http(s) URL")
        if parts.username is not None or parts.password is not None:
            raise EndpointNotAllowed("the URL may not carry user info")
        if "#" in url:
            raise EndpointNotAllowed("the URL may not have a fragment ('#')")
        if fixed_path:
            if "?" in url:
                raise EndpointNotAllowed("an endpoint URL may not have a query ('?')")
            if {".", ".."} & {unquote(s) for s in parts.path.split("/")}:
                raise EndpointNotAllowed("an endpoint URL may not have '.' or '..' path segments")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            httpx.URL(url)  # what the call would be made with must take it too
        except (ValueError, httpx.InvalidURL):
            raise EndpointNotAllowed(f"{url[:200]!r} is not a valid URL") from None
        return hostname, port

    async def resolve(self, host: str, port: int) -> tuple[Address, ...]:
        """The addresses ``host`` stands for: itself when it is an address in any spelling,
        else what the resolver answers. :class:`HostNotResolved` when there are none."""
        if (literal := parse_address(host)) is not None:
            return (literal,)
        try:
            answers = await self._resolver(host, port)
        except HostNotResolved:
            raise
        except (OSError, UnicodeError):
            raise HostNotResolved(f"host {host!r} does not resolve") from None
        addresses = tuple(dict.fromkeys(ipaddress.ip_address(a.split("%", 1)[0]) for a in answers))
        if not addresses:
            raise HostNotResolved(f"host {host!r} does not resolve")
        return addresses

    async def check(self, url: str, *, fixed_path: bool = True) -> None:
        """Raise :class:`EndpointNotAllowed` unless the suite may call ``url`` (resolving it)."""
        host, port = self.check_syntax(url, fixed_path=fixed_path)
        self.check_addresses(host, await self.resolve(host, port))

    def check_addresses(self, host: str, addresses: tuple[Address, ...]) -> None:
        refused = [str(a) for a in addresses if not self.address_allowed(a)]
        if refused or not addresses:
            # the addresses go to the log, for operators; the refusal shows the host as written
            log.info("endpoint_refused", rule=self.name, host=host, addresses=refused)
            raise EndpointNotAllowed(
                f"host {host!r} is outside the {self.name} networks ({self.setting})"
            )


def join(endpoint_url: str, path: str) -> str:
    """The URL of the contract's ``path`` (``/check``) under a connector's endpoint URL: the
    endpoint's path as a prefix, never its query or fragment (refused when published, and by
    :meth:`EndpointPolicy.check_syntax` before each call)."""
    parts = urlsplit(endpoint_url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + path, "", ""))


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPATIBLE = ipaddress.ip_network("::/96")
_NUMBER = re.compile(r"^(0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*)$")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to, if it carries one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def parse_address(host: str) -> Address | None:
    """``host`` as an address if it is one: IPv6 (brackets, a zone dropped), or IPv4 in any
    spelling ``inet_aton`` (so getaddrinfo) and URL parsers accept: 1 to 4 dot-separated parts
    in decimal, octal (``0177``) or hex (``0x7f``), the last filling the remaining bytes
    (``127.1``, ``2130706433``), with an optional trailing dot. ``None`` for a name."""
    text = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    parts = text[:-1].split(".") if text.endswith(".") else text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMBER.match(p) for p in parts):
        return None
    *head, last = [_number(p) for p in parts]
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return None
    value = last
    for i, n in enumerate(head):
        value |= n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _number(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    return int(part, 8) if part.startswith("0") else int(part)
