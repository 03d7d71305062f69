"""Bounded work per tenant: how many proxied requests and WebSockets one tenant has in flight
in this gateway process (``SEEDOS_GATEWAY_TENANT_MAX_CONCURRENT``), so that long-polls,
slow streams and open sockets of one tenant cannot hold every worker and upstream connection.

A proxied request holds its slot until its answer is fully sent (a streamed answer for as long
as it streams), a WebSocket for as long as it is open; the caller releases it in ``finally``,
so errors, client disconnects and cancellations give it back."""

from __future__ import annotations

import uuid

from prometheus_client import Gauge
from starlette.types import Scope

from common.errors import SeedosError
from common.internal_auth import Principal
from gateway.limits.limiter import RATE_LIMITED, RateLimiter

HELD = Gauge(
    "seedos_tenant_slots_held",
    "Proxied requests and WebSockets in flight in this gateway process (all tenants).",
    multiprocess_mode="livesum",
)


class TooManyConcurrent(SeedosError):
    status, code, title = 429, "too_many_concurrent", "Too many concurrent requests"


class TenantSlots:
    def __init__(self, *, max_per_tenant: int) -> None:
        self.max_per_tenant = max_per_tenant
        self._held: dict[uuid.UUID, int] = {}

    def acquire(self, principal: Principal) -> uuid.UUID | None:
        """Takes one of the tenant's slots (:meth:`release` it with what this returns), or
        raises :class:`TooManyConcurrent`. A caller without a tenant takes none (None)."""
        if not principal.has_tenant:
            return None
        tenant = principal.tenant_id
        held = self._held.get(tenant, 0)
        if held >= self.max_per_tenant:
            RATE_LIMITED.labels("concurrency").inc()
            raise TooManyConcurrent(
                f"the tenant has {held} requests in flight here, the most it may: retry when"
                " one has finished",
                headers={"Retry-After": "1"},
                limit=self.max_per_tenant,
            )
        self._held[tenant] = held + 1
        HELD.inc()
        return tenant

    def release(self, tenant: uuid.UUID | None) -> None:
        if tenant is None:
            return
        HELD.dec()
        left = self._held[tenant] - 1
        if left:
            self._held[tenant] = left
        else:
            del self._held[tenant]


async def admit_and_hold(
    slots: TenantSlots, limiter: RateLimiter, scope: Scope, principal: Principal,
    *, credential: bytes | None = None,
) -> uuid.UUID | None:  # fmt: skip
    """A proxied request's or WebSocket's way in: one of its tenant's slots (to release when
    done), then its rate-limit tokens. The slot first, so that a request refused for too many
    in flight spends no tokens (its client is told to retry in a second, and would otherwise
    drain its budget while it waits); the slot given back when the rate limit refuses."""
    slot = slots.acquire(principal)
    try:
        await limiter.admit(scope, principal, credential=credential)
    except BaseException:
        slots.release(slot)
        raise
    return slot
