"""Who a verified bearer JWT (:mod:`gateway.auth.jwts`) is here, and in which tenant.

A *directory* issuer's subject is the person with that (issuer, subject) among our users (as
after an OIDC sign-in, or linked), acting by their membership: in the tenant the request names
in ``X-Seedos-Tenant``, else in their only one. An *authoritative* issuer's token names the
tenant and role itself; the person is not one of our users. A tenant is named by its id or, by
a value that is not a UUID, its slug (:func:`tenant_ref`): a UUID is never taken for a slug,
so a tenant whose slug looks like another's id cannot be reached in its place.

What a request with a JWT leaves for a WebSocket ticket (:func:`credential`) is not a hash of
the token but what it was found to be (issuer, subject, expiry, tenant, role): any gateway
replica can judge the socket by it again, until the token expires.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import asyncpg

from common.errors import Forbidden, SeedosError, Unauthorized
from common.internal_auth import Principal
from common.roles import Role
from gateway.auth import repository
from gateway.auth.jwts import Issuer, TokenRefused, Verified

TENANT_HEADER = "x-seedos-tenant"
CREDENTIAL = b"J"  # the first byte of a JWT caller's ticket credential
MAX_CREDENTIAL_BYTES = 1024  # ws_tickets_credential_check (migrations/20261214090000_...)


class NotLinked(Unauthorized):
    code, title = "identity_not_linked", "Unknown person"
    reason = "not_linked"


class TenantRequired(SeedosError):
    status, code, title = 400, "tenant_required", "Choose a tenant"
    reason = "tenant_ambiguous"


class NotAMember(Forbidden):
    code, title = "not_a_member", "Not a member"
    reason = "not_a_member"


class UnknownTenant(Forbidden):
    code, title = "unknown_tenant", "Unknown tenant"
    reason = "unknown_tenant"


class UnknownRole(Forbidden):
    code, title = "unknown_role", "Unknown role"
    reason = "unknown_role"


class TenantNotAllowed(Forbidden):
    code, title = "tenant_not_allowed", "Tenant not allowed"
    reason = "tenant_not_allowed"


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    suspended: bool


async def resolve(conn: asyncpg.Connection, verified: Verified, issuer: Issuer) -> Caller:
    """The caller a verified token stands for; raises one of this module's errors."""
    if issuer.authoritative:
        return await _authoritative(conn, verified, issuer)
    return await _directory(conn, verified, issuer)


async def _directory(conn: asyncpg.Connection, verified: Verified, issuer: Issuer) -> Caller:
    rows = await repository.identity_memberships(
        conn, issuer=issuer.settings.issuer, subject=verified.subject
    )
    if not rows:
        raise NotLinked(
            f"nobody here has this {issuer.name} identity: the person must sign in once"
            " through the product with a sign-in provider of the same issuer"
            " (SEEDOS_GATEWAY_OIDC_PROVIDERS), or the issuer be authoritative"
        )
    user_id = rows[0]["user_id"]
    allowed = issuer.settings.tenants
    members = [r for r in rows if r["tenant_id"] is not None
               and (not allowed or r["tenant_slug"] in allowed)]  # fmt: skip
    if verified.tenant is not None:
        ref = tenant_ref(verified.tenant)
        members = [r for r in members if _names(ref, r)]
        if not members:
            raise NotAMember(f"not a member of tenant {verified.tenant[:64]!r}")
    elif len(members) > 1:
        raise TenantRequired(
            "a member of several tenants: send X-Seedos-Tenant: <tenant slug or id>"
        )
    elif not members:
        raise NotAMember("not a member of any tenant (here)")
    row = members[0]
    principal = Principal(
        tenant_id=row["tenant_id"], subject=f"user:{user_id}", role=row["role"],
        tenant_slug=row["tenant_slug"], auth_method="jwt", user_id=user_id,
    )  # fmt: skip
    return Caller(principal, suspended=row["suspended"])


async def _authoritative(conn: asyncpg.Connection, verified: Verified, issuer: Issuer) -> Caller:
    tenant_claim, role_claim = issuer.settings.claims
    if verified.tenant is None:
        raise UnknownTenant(f"the token names no tenant ({tenant_claim})")
    if verified.role not in Role.__members__:
        raise UnknownRole(
            f"the token's {role_claim} is not a role here (viewer, editor, admin, publisher)"
        )
    ref = tenant_ref(verified.tenant)
    if isinstance(ref, uuid.UUID):
        row = await repository.tenant_by_id(conn, ref)
    else:
        row = await repository.tenant_by_slug(conn, ref)
    if row is None:
        raise UnknownTenant(f"no tenant {verified.tenant[:64]!r} ({tenant_claim})")
    if issuer.settings.tenants and row["tenant_slug"] not in issuer.settings.tenants:
        raise TenantNotAllowed(f"issuer {issuer.name} may not speak for this tenant")
    principal = Principal(
        tenant_id=row["tenant_id"], subject=f"jwt:{issuer.name}:{verified.subject}",
        role=verified.role, tenant_slug=row["tenant_slug"], auth_method="jwt",
    )  # fmt: skip
    return Caller(principal, suspended=row["suspended"])


def credential(verified: Verified, caller: Caller) -> bytes:
    """What a WebSocket ticket of this caller stores: the token as it was found to be, in the
    tenant it was found in. A token whose credential would pass :data:`MAX_CREDENTIAL_BYTES`
    (a long subject of non-ASCII or escaped characters) is refused here, when it authenticates,
    rather than failing when a ticket is stored."""
    found = [verified.issuer, verified.subject, verified.expires,
             str(caller.principal.tenant_id), verified.role]  # fmt: skip
    key = CREDENTIAL + json.dumps(found, separators=(",", ":"), ensure_ascii=False).encode()
    if len(key) > MAX_CREDENTIAL_BYTES:
        raise TokenRefused("invalid_claim", "the token's subject is too long to be used here")
    return key


def from_credential(key: bytes) -> Verified:
    """The token a :func:`credential` stands for (401 if it is not one)."""
    try:
        issuer, subject, expires, tenant, role = json.loads(key[1:])
        if not all(isinstance(v, str) for v in (issuer, subject, tenant)):
            raise ValueError
        return Verified(issuer, subject, int(expires), tenant=tenant, role=role)
    except (ValueError, TypeError):
        raise Unauthorized("not a credential", code="invalid_credentials") from None


def tenant_ref(value: str) -> uuid.UUID | str:
    """What names a tenant: its id when ``value`` is a UUID, else its slug."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return value


def _names(ref: uuid.UUID | str, row: asyncpg.Record) -> bool:
    """Whether ``ref`` (:func:`tenant_ref`) names the tenant of a membership's row."""
    if isinstance(ref, uuid.UUID):
        return str(row["tenant_id"]) == str(ref)
    return row["tenant_slug"] == ref
