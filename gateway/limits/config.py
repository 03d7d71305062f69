"""``SEEDOS_GATEWAY_RATE_LIMITS``: a quota per window for the tenant and for each credential
(by the credential's role), with overrides by tenant slug.

Which credential limit applies, first found: the tenant override's for the role, the tenant
override's ``credential``, the role's, ``credential``. ``null`` for a limit means no limit in
that scope. A tenant override's ``tenant`` replaces the tenant limit."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field, model_validator

from common.roles import Role
from gateway.tenants.service import SLUG


class Limit(BaseModel):
    """``quota`` requests per ``window_seconds``: a token bucket holding ``quota`` tokens,
    refilled at ``quota / window_seconds`` a second (so a full bucket allows a burst of
    ``quota``)."""

    model_config = {"frozen": True, "extra": "forbid"}

    quota: int = Field(ge=1, le=1_000_000_000)
    window_seconds: int = Field(1, ge=1, le=86_400)

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return self.quota / self.window_seconds


# Above what one gateway process serves (bench/gateway_proxy.py: a few thousand requests a
# second), so that only a configured limit is ever reached: set your own.
DEFAULT_TENANT = Limit(quota=20_000, window_seconds=1)
DEFAULT_CREDENTIAL = Limit(quota=10_000, window_seconds=1)


class TenantLimits(BaseModel):
    """One tenant's override; a field left out keeps the general setting."""

    model_config = {"frozen": True, "extra": "forbid"}

    tenant: Limit | None = None
    credential: Limit | None = None
    roles: dict[Role, Limit | None] = Field(default_factory=dict)


class RateLimitSettings(BaseModel):
    model_config = {"frozen": True, "extra": "forbid"}

    tenant: Limit | None = DEFAULT_TENANT
    credential: Limit | None = DEFAULT_CREDENTIAL
    roles: dict[Role, Limit | None] = Field(default_factory=dict)
    tenants: dict[str, TenantLimits] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _slugs(self) -> Self:
        for slug in self.tenants:
            if not SLUG.match(slug):
                raise ValueError(f"tenants: {slug!r} is not a tenant slug")
        return self

    def resolve(self, slug: str | None, role: str) -> tuple[Limit | None, Limit | None]:
        """The tenant limit and the credential limit of a caller in tenant ``slug`` (None: no
        tenant) with ``role``."""
        override = self.tenants.get(slug) if slug is not None else None
        tenant = self.tenant
        if override is not None and "tenant" in override.model_fields_set:
            tenant = override.tenant
        for source in (override, self):
            if source is None:
                continue
            if role in source.roles:
                return tenant, source.roles[role]  # type: ignore[index]
            if source is override and "credential" in override.model_fields_set:
                return tenant, override.credential
        return tenant, self.credential
