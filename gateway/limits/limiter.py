"""The rate-limit check of every authenticated ``/api/v1/**`` request, proxied or the gateway's
own: one token from the tenant's bucket and one from the credential's (the API key's or the
session's), all or none; else 429 ``rate_limited`` with ``Retry-After``. Its answer, and every
other answer of a checked request, carries ``RateLimit-Policy`` and ``RateLimit``
(:mod:`gateway.limits.headers`). Sign-in (``/auth/*``), health, metrics and the public paths
are not checked here (sign-in has its per-address limiter, gateway.ratelimit)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol

import structlog
from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.errors import SeedosError
from common.internal_auth import Principal
from gateway.limits import headers
from gateway.limits.buckets import LocalBuckets, Policies, Rule, Verdict
from gateway.limits.config import RateLimitSettings
from gateway.limits.redis_policy import RedisBuckets, make_client

log = structlog.get_logger(component="seedos.gateway.limits")
LIMITED_PREFIX = "/api/v1/"
RATE_LIMITED = Counter(
    "seedos_rate_limited",
    "Requests refused with 429 at the gateway, by the limit they met: tenant, credential "
    "(rates), or concurrency (a tenant's requests in flight).",
    ["scope"],
)
_HEADERS = "seedos.ratelimit"  # in the request's state: the fields its answer carries
_CREDENTIAL = "credential"  # where the authenticator leaves the credential's key


class RateLimited(SeedosError):
    status, code, title = 429, "rate_limited", "Rate limit exceeded"


class Buckets(Protocol):
    async def take(self, policies: Policies, keys: list[Hashable]) -> Verdict: ...

    async def close(self) -> None: ...


class LocalPolicy:
    """:class:`~gateway.limits.buckets.LocalBuckets` behind the same awaitable ``take``."""

    def __init__(self, buckets: LocalBuckets) -> None:
        self.buckets = buckets

    async def take(self, policies: Policies, keys: list[Hashable]) -> Verdict:
        return self.buckets.take(policies, keys)

    async def close(self) -> None:
        pass


class RateLimiter:
    def __init__(self, settings: RateLimitSettings, *, buckets: Buckets) -> None:
        self.settings = settings
        self.buckets = buckets
        self._plans: dict[tuple[str | None, bool, str], tuple[Policies, bytes]] = {}

    async def close(self) -> None:
        await self.buckets.close()

    def plan(self, principal: Principal) -> tuple[Policies, bytes]:
        """The rules that apply to ``principal``, and its ``RateLimit-Policy``."""
        slug = principal.tenant_slug if principal.has_tenant else None
        # one plan for every tenant without an override of its own
        key = (slug if slug in self.settings.tenants else None, principal.has_tenant,
               principal.role)  # fmt: skip
        found = self._plans.get(key)
        if found is None:
            tenant, credential = self.settings.resolve(slug, principal.role)
            policies = []
            if tenant is not None and principal.has_tenant:
                policies.append(Rule.of("tenant", tenant))
            if credential is not None:
                policies.append(Rule.of("credential", credential))
            found = self._plans[key] = (policies, headers.policy_value(policies))
        return found

    async def admit(
        self, scope: Scope, principal: Principal, *, credential: bytes | None = None
    ) -> None:
        """Takes the request's tokens (once per request), or raises :class:`RateLimited`.
        ``credential``: the key of the credential the request used (default: the one the
        authenticator left in its state)."""
        state = scope["state"]
        if _HEADERS in state or not scope["path"].startswith(LIMITED_PREFIX):
            return
        policies, policy_value = self.plan(principal)
        if not policies:
            state[_HEADERS] = ()
            return
        verdict = await self._take(policies, principal, credential or state[_CREDENTIAL])
        fields = [
            (headers.POLICY, policy_value),
            (headers.STATE, headers.state_value(policies, verdict.tokens)),
        ]
        if verdict.admitted:
            state[_HEADERS] = fields
            return
        state[_HEADERS] = ()
        rule = policies[verdict.refused]
        wait = _wait(policies, verdict)
        raise RateLimited(
            f"the {rule.name}'s rate limit of {rule.quota} requests per {rule.window_seconds} s"
            f" is reached: retry in {wait} s",
            headers={"Retry-After": str(wait), **{k.decode(): v.decode() for k, v in fields}},
            scope=rule.name,
            retry_after=wait,
        )

    async def another(self, scope: Scope, principal: Principal) -> int | None:
        """One more request's tokens for the admitted request in ``scope``, which carries
        several API calls (an offline batch's items: each costs what the call would): None
        when taken, else the seconds to wait."""
        policies, _ = self.plan(principal)
        if not policies or _CREDENTIAL not in scope["state"]:
            return None
        verdict = await self._take(policies, principal, scope["state"][_CREDENTIAL])
        return None if verdict.admitted else _wait(policies, verdict)

    async def _take(self, policies: Policies, principal: Principal, credential: bytes) -> Verdict:
        tenant = principal.tenant_id
        keys: list[Hashable] = []
        for rule in policies:
            if rule.name == "tenant":
                keys.append(("t", tenant))
            elif principal.auth_method == "jwt":
                # one bucket per person, not per token: a refreshed token (a new one every
                # hour or so from Supabase) must not start with a full bucket
                keys.append(("c", tenant, b"jwt:" + principal.subject.encode()))
            else:
                keys.append(("c", tenant, credential))
        verdict = await self.buckets.take(policies, keys)
        if not verdict.admitted:
            RATE_LIMITED.labels(policies[verdict.refused].name).inc()
        return verdict


def _wait(policies: Policies, verdict: Verdict) -> int:
    """The longest wait of the buckets short of a token: retrying sooner is refused again."""
    return max(
        headers.retry_seconds(p, left)
        for p, left in zip(policies, verdict.tokens, strict=True)
        if left < 1
    )


def build(settings: RateLimitSettings, *, redis_url: str | None) -> RateLimiter:
    """The limiter of a gateway process: the ``redis`` policy when ``redis_url`` is set (its
    client connects on first use), else ``local``."""
    local = LocalBuckets()
    if redis_url is None:
        log.info("rate_limits", policy="local")
        return RateLimiter(settings, buckets=LocalPolicy(local))
    log.info("rate_limits", policy="redis")
    return RateLimiter(settings, buckets=RedisBuckets(make_client(redis_url), fallback=local))


def response_fields(scope: Scope) -> list[tuple[bytes, bytes]] | tuple[()]:
    """The rate-limit fields of a request's answer (none when it was not checked)."""
    return scope.get("state", {}).get(_HEADERS, ())


class RateLimitFields:
    """ASGI layer of the gateway's own routes: their answers carry the fields of the check
    (made where the caller is authenticated: gateway.deps and gateway.guard)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(LIMITED_PREFIX):
            await self.app(scope, receive, send)
            return

        async def with_fields(message: Message) -> None:
            if message["type"] == "http.response.start" and (found := response_fields(scope)):
                message["headers"] = [*message.get("headers", ()), *found]
            await send(message)

        await self.app(scope, receive, with_fields)
