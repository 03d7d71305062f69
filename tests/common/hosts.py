"""Names that resolve without DNS, and a guard that proves nothing connects off this machine.

Tests of the address rules resolve through :func:`resolver` (``EndpointPolicy.using``), so a name
can lead into private space (``internal.test`` -> 10.1.2.3) without a packet to a name server,
and run under :func:`outside_connects`, which refuses (and records) any socket connect or
getaddrinfo to something other than loopback: a refusal that came too late fails the test
instead of sending a packet.
"""

from __future__ import annotations

from collections.abc import Sequence

from common.endpoints import HostNotResolved
from seedos_sdk.testing.network import outside_connects  # noqa: F401  (for the tests here)

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
