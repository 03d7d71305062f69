"""Where outbound calls may go: an address rule, and the HTTP transport that applies it when
connecting.

A rule (:class:`AddressPolicy`) is a list of networks. A URL passes when it is http(s), has no
user info, and every address its host resolves to lies in one of them. The egress rule,
``SEEDOS_EGRESS_ALLOWED_NETWORKS`` (:func:`egress_policy`), is the one for calls to the outside
world; its default, ``0.0.0.0/0,::/0``, means public addresses only, so a local stand-in
(loopback) must be listed. The generic connector always calls through it; a hand-written
connector opts in with ``HttpClient(egress=egress_policy())``.

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

The rule is checked when connecting (:class:`CheckedTransport`): the host is resolved once,
every address must pass, and the connection goes to one of exactly those addresses (TLS still
verifies the certificate against the host name). A name that answers an allowed address when
checked and a metadata address when connected (DNS rebinding) gains nothing, and no proxy from
the environment is used. A name that does not resolve is a connection error (worth retrying),
not a refusal.

A refusal names the host as written and the rule's setting, never the addresses it resolved to
(those go to the log, for operators).

This module imports nothing of the suite's services: they build their own rules on it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Self
from urllib.parse import unquote, urlsplit

import httpcore
import httpx
import structlog
from httpcore._backends.auto import AutoBackend

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# A host name's addresses as text (what getaddrinfo answers); only called for names, never for
# addresses written as such. Tests pass one that answers without DNS.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

log = structlog.get_logger(component="seedos_sdk.egress")

EGRESS_SETTING = "SEEDOS_EGRESS_ALLOWED_NETWORKS"
# The egress rule's default: every address a wildcard reaches, which is the public ones.
DEFAULT_EGRESS = "0.0.0.0/0,::/0"
LOOPBACK = "127.0.0.0/8,::1/128"
PRIVATE = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"

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


class AddressNotAllowed(Exception):
    """The URL, or an address its host resolves to, is outside the rule: nothing was sent."""


class HostNotResolved(AddressNotAllowed):
    """The host has no address: a refusal when checking a URL ahead of time, a connection error
    (worth retrying) when connecting."""


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


class AddressPolicy:
    """One address rule: its networks, what it is called in messages, and how it resolves.

    Args:
        allowed: the networks (see :func:`parse_networks`).
        name: the rule's name in refusals ("outside the egress networks").
        setting: where an operator lists networks, named in refusals.
        resolver: how a host name becomes addresses (default: the system's getaddrinfo).

    Subclasses may set :attr:`refused` and :attr:`unresolved` to their own subclasses of
    :class:`AddressNotAllowed` and :class:`HostNotResolved` (every refusal is raised as those),
    and :attr:`default_name` and :attr:`default_setting` to another rule's.
    """

    refused: type[AddressNotAllowed] = AddressNotAllowed
    unresolved: type[HostNotResolved] = HostNotResolved
    # the rule when not told otherwise (a subclass may name another)
    default_name: str = "egress"
    default_setting: str = EGRESS_SETTING

    def __init__(
        self,
        allowed: Iterable[Network],
        *,
        name: str | None = None,
        setting: str | None = None,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.allowed = tuple(allowed)
        self.name = name or self.default_name
        self.setting = setting or self.default_setting
        self._resolver = resolver

    def using(self, resolver: Resolver) -> Self:
        """The same rule resolving names with ``resolver`` (tests: names without DNS)."""
        return type(self)(self.allowed, name=self.name, setting=self.setting, resolver=resolver)

    def address_allowed(self, address: Address) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and (inner := embedded_ipv4(address)):
            return self.address_allowed(inner)
        covering = [n for n in self.allowed if n.version == address.version and address in n]
        if not covering:
            return False
        guards = [g for g in GUARDED if g.version == address.version and address in g]
        return all(any(n.prefixlen >= g.prefixlen for n in covering) for g in guards)

    def check_syntax(self, url: str, *, fixed_path: bool = True) -> tuple[str, int]:
        """The URL's host and port, or :attr:`refused` for what no address can fix: not
        http(s), user info, a bad port or host, a fragment. With ``fixed_path`` (an endpoint to
        which paths are appended) also a query or a ``.``/``..`` path segment, either of which
        would move the appended paths elsewhere."""
        try:
            parts = urlsplit(url)
            hostname = parts.hostname
        except ValueError:
            raise self.refused(f"{url[:200]!r} is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not hostname:
            raise self.refused(f"{url[:200]!r} is not an http(s) URL")
        if parts.username is not None or parts.password is not None:
            raise self.refused("the URL may not carry user info")
        if "#" in url:
            raise self.refused("the URL may not have a fragment ('#')")
        if fixed_path:
            if "?" in url:
                raise self.refused("an endpoint URL may not have a query ('?')")
            if {".", ".."} & {unquote(s) for s in parts.path.split("/")}:
                raise self.refused("an endpoint URL may not have '.' or '..' path segments")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            httpx.URL(url)  # what the call would be made with must take it too
        except (ValueError, httpx.InvalidURL):
            raise self.refused(f"{url[:200]!r} is not a valid URL") from None
        return hostname, port

    async def resolve(self, host: str, port: int) -> tuple[Address, ...]:
        """The addresses ``host`` stands for: itself when it is an address in any spelling,
        else what the resolver answers. :attr:`unresolved` when there are none."""
        if (literal := parse_address(host)) is not None:
            return (literal,)
        try:
            answers = await self._resolver(host, port)
        except (HostNotResolved, OSError, UnicodeError) as exc:
            if isinstance(exc, self.unresolved):
                raise
            raise self.unresolved(f"host {host!r} does not resolve") from None
        addresses = tuple(dict.fromkeys(ipaddress.ip_address(a.split("%", 1)[0]) for a in answers))
        if not addresses:
            raise self.unresolved(f"host {host!r} does not resolve")
        return addresses

    async def check(self, url: str, *, fixed_path: bool = True) -> None:
        """Raise :attr:`refused` unless ``url`` may be called (resolving its host)."""
        host, port = self.check_syntax(url, fixed_path=fixed_path)
        self.check_addresses(host, await self.resolve(host, port))

    def check_addresses(self, host: str, addresses: tuple[Address, ...]) -> None:
        """Raise :attr:`refused` unless every one of ``host``'s ``addresses`` is allowed."""
        refused = [str(a) for a in addresses if not self.address_allowed(a)]
        if refused or not addresses:
            # the addresses go to the log, for operators; the refusal shows the host as written
            log.info("endpoint_refused", rule=self.name, host=host, addresses=refused)
            raise self.refused(
                f"host {host!r} is outside the {self.name} networks ({self.setting})"
            )


def egress_policy(environ: Mapping[str, str] | None = None) -> AddressPolicy:
    """The egress rule as ``SEEDOS_EGRESS_ALLOWED_NETWORKS`` in ``environ`` (default: this
    process's environment) sets it; unset, public addresses only. A bad entry raises
    ValueError naming the setting."""
    value = (os.environ if environ is None else environ).get(EGRESS_SETTING) or DEFAULT_EGRESS
    try:
        networks = parse_networks(value)
    except ValueError as exc:
        raise ValueError(f"{EGRESS_SETTING}: {exc}") from None
    return AddressPolicy(networks, name="egress", setting=EGRESS_SETTING)


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


# ---------------------------------------------------------------------------------- transport


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """Resolves through ``policy``, refuses what it does not allow, and only then has ``inner``
    (the real network by default) connect to an allowed address."""

    def __init__(
        self, policy: AddressPolicy, *, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._policy = policy
        self._inner = inner or AutoBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore passes it by this name
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._policy.resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from None
        except HostNotResolved:
            raise httpcore.ConnectError(f"{host!r} does not resolve") from None
        self._policy.check_addresses(host, addresses)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )  # fmt: skip
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class CheckedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool that connects through :class:`CheckedBackend`,
    never through a proxy.

    Args:
        policy: the rule every connection's addresses must pass.
        limits: the pool's limits.
        inner: the network backend that connects (tests: one that records and connects nowhere).
        ssl_context: for https (default: a new verifying context, as httpx makes).
    """

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        limits: httpx.Limits,
        inner: httpcore.AsyncNetworkBackend | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        context = ssl_context or httpx.create_ssl_context()
        super().__init__(verify=context, limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=CheckedBackend(policy, inner=inner),
        )
