"""Names that resolve without DNS, and a guard that proves nothing connects off this machine.

Tests of the address rules resolve through :func:`resolver` (``EndpointPolicy.using``), so a name
can lead into private space (``internal.test`` -> 10.1.2.3) without a packet to a name server,
and run under :func:`outside_connects`, which refuses (and records) any socket connect or
getaddrinfo to something other than loopback: a refusal that came too late fails the test
instead of sending a packet.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest

from common.endpoints import HostNotResolved

HOSTS: dict[str, tuple[str, ...]] = {
    "internal.test": ("10.1.2.3",),  # private space
    "metadata.test": ("169.254.169.254",),
    "loopback.test": ("127.0.0.1",),
    "public.test": ("93.184.216.34",),
    "mixed.test": ("93.184.216.34", "10.1.2.3"),  # one public, one private address
    "mapped.test": ("::ffff:10.1.2.3",),
}


async def resolver(host: str, port: int) -> Sequence[str]:
    """:data:`HOSTS`; any other name does not resolve (no DNS is ever asked)."""
    try:
        return HOSTS[host.lower().rstrip(".")]
    except KeyError:
        raise HostNotResolved(f"host {host!r} does not resolve") from None


def _loopback(host: object) -> bool:
    try:
        address = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return False
    return address.is_loopback


@contextmanager
def outside_connects(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Every attempt to connect to, or resolve, something other than loopback: refused before
    the system call (so no packet leaves), and listed for the test to assert on."""
    attempts: list[object] = []
    connect, connect_ex, getaddrinfo = (
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
    )  # fmt: skip

    def guarded(real):
        def attempt(sock: socket.socket, address, *args):
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
                attempts.append(address)
                raise ConnectionRefusedError(f"test guard: no connection to {address!r}")
            return real(sock, address, *args)

        return attempt

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host is not None and not _loopback(host) and host != "localhost":
            attempts.append(("getaddrinfo", host))
            raise socket.gaierror(socket.EAI_NONAME, "test guard: no name resolution")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(connect_ex))
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    yield attempts
