"""A guard for tests of address rules: it proves nothing connects off this machine.

:func:`outside_connects` refuses (and records) every socket connect and every ``getaddrinfo`` to
something other than loopback, before the system call, so a refusal that came too late fails
the test instead of sending a packet. Shared by the SDK's tests and the suite's.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def is_loopback(host: object) -> bool:
    """Whether ``host`` is a loopback address (a name is not)."""
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@contextmanager
def outside_connects(monkeypatch: Any) -> Iterator[list[object]]:
    """Within the block, connects and lookups off loopback are refused and listed (the list is
    what the block gets, for the test to assert on). ``monkeypatch``: pytest's fixture."""
    attempts: list[object] = []
    connect, connect_ex, getaddrinfo = (
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
    )  # fmt: skip

    def guarded(real):
        def attempt(sock: socket.socket, address, *args):
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
                attempts.append(address)
                raise ConnectionRefusedError(f"test guard: no connection to {address!r}")
            return real(sock, address, *args)

        return attempt

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host is not None and not is_loopback(host) and host != "localhost":
            attempts.append(("getaddrinfo", host))
            raise socket.gaierror(socket.EAI_NONAME, "test guard: no name resolution")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(connect_ex))
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    yield attempts
