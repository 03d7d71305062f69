"""The HTTP transport for outbound calls, with an address rule applied when connecting.

The host is resolved here, every address it resolves to must pass the rule, and the connection
goes to one of exactly those addresses; TLS still verifies the certificate against the host
name. So a name that answers an allowed address when checked and a metadata address when
connected (DNS rebinding) cannot get through, and neither can a proxy from the environment
(``trust_env`` is off). A name that does not resolve is a connection error (worth retrying),
not a refusal. Connector calls go through the connector rule, requests to OAuth providers
through the egress rule (common/endpoints.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from httpcore._backends.auto import AutoBackend

from common.endpoints import EndpointPolicy, HostNotResolved


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """Resolves through ``policy``, refuses what it does not allow, and only then has ``inner``
    (the real network by default) connect to an allowed address."""

    def __init__(
        self, policy: EndpointPolicy, *, inner: httpcore.AsyncNetworkBackend | None = None
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
    """httpx's transport over a connection pool that connects through :class:`CheckedBackend`."""

    def __init__(
        self,
        policy: EndpointPolicy,
        *,
        limits: httpx.Limits,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        super().__init__(limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=CheckedBackend(policy, inner=inner),
        )
