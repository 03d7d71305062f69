"""Email domains a tenant registered: people who sign in with a verified email of one join the
tenant as viewers. No DNS proof is asked (README), so a domain belongs to one tenant at most,
and public webmail domains are refused."""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection
from typing import Any

import asyncpg

from common import audit
from common.errors import Conflict, InvalidRequest, NotFound
from gateway.domains import repository
from gateway.users import repository as users

MAX_DOMAINS = 100  # per tenant: a tenant's domains fit one page

# Where anyone can get an address: registering one would let strangers join the tenant.
PUBLIC_EMAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
    "yahoo.com", "ymail.com", "icloud.com", "me.com", "mac.com", "proton.me", "protonmail.com",
    "pm.me", "aol.com", "mail.ru", "inbox.ru", "bk.ru", "list.ru", "mail.com", "zoho.com",
    "web.de", "t-online.de", "fastmail.com", "tutanota.com", "qq.com", "163.com", "126.com",
    "naver.com", "hey.com",
})  # fmt: skip
# Providers with a domain per country: gmx.de, yandex.ru, yahoo.co.uk, hotmail.fr ...
PUBLIC_EMAIL_FAMILIES = frozenset({"gmx", "yandex", "yahoo", "hotmail", "outlook", "live"})
_COUNTRY_SECOND_LEVEL = frozenset({"co", "com", "net", "org"})
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class InvalidDomain(InvalidRequest):
    code, title = "invalid_domain", "Invalid email domain"


class PublicEmailDomain(InvalidRequest):
    code, title = "public_email_domain", "Public email domain"


class DomainTaken(Conflict):
    code, title = "domain_taken", "Email domain taken"


class TooManyDomains(Conflict):
    code, title = "too_many_domains", "Too many email domains"


class DomainNotFound(NotFound):
    code, title = "domain_not_found", "Email domain not found"


def normalise(domain: str) -> str:
    """The domain as stored: lowercase ASCII (IDNA punycode), without a trailing dot; raises
    :class:`InvalidDomain` for anything that is not a domain name of two labels or more."""
    text = domain.strip().rstrip(".").lower()
    try:
        name = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidDomain(f"'{domain[:100]}' is not a domain name") from None
    labels = name.split(".")
    if (
        not 3 <= len(name) <= 253
        or len(labels) < 2
        or not all(_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()  # an IP address
    ):
        raise InvalidDomain(f"'{domain[:100]}' is not a domain name like example.com")
    return name


def is_public(domain: str) -> bool:
    """Whether a normalised domain is a public webmail provider's."""
    labels = domain.split(".")
    family = labels[0] in PUBLIC_EMAIL_FAMILIES and (
        len(labels) == 2 or (len(labels) == 3 and labels[1] in _COUNTRY_SECOND_LEVEL)
    )
    return domain in PUBLIC_EMAIL_DOMAINS or family


def domain_of(email: str) -> str | None:
    """The normalised domain of an email address (after its last @), or None."""
    _, at, domain = email.rpartition("@")
    if not at:
        return None
    try:
        return normalise(domain)
    except InvalidDomain:
        return None


async def add(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    domain: str,
    actor: str,
    request_id: str | None = None,
) -> dict[str, Any]:
    name = normalise(domain)
    if is_public(name):
        raise PublicEmailDomain(
            f"{name} is a public email provider's: anyone could join through it"
        )
    if await repository.count(conn, tenant_id) >= MAX_DOMAINS:
        raise TooManyDomains(f"a tenant registers at most {MAX_DOMAINS} email domains")
    row = await repository.insert(conn, tenant_id=tenant_id, domain=name, created_by=actor)
    if row is None:
        mine = await repository.owner(conn, name) == tenant_id
        raise DomainTaken(
            f"this tenant registered {name} already" if mine
            else f"{name} is registered by another tenant"
        )  # fmt: skip
    await audit.record(
        conn, tenant_id=tenant_id, actor=actor, action="domain.added", target=f"domain:{name}",
        payload={"domain": name, "role": row["role"]}, request_id=request_id,
    )  # fmt: skip
    return dict(row)


async def list_domains(conn: asyncpg.Connection, *, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    return [dict(r) for r in await repository.list_for_tenant(conn, tenant_id)]


async def remove(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    domain: str,
    actor: str,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Stop people of the domain joining; who joined through it stays a member."""
    try:
        name = normalise(domain)
    except InvalidDomain:
        raise DomainNotFound(f"no email domain '{domain[:100]}'") from None
    row = await repository.delete(conn, tenant_id=tenant_id, domain=name)
    if row is None:
        raise DomainNotFound(f"this tenant has no email domain {name}")
    await audit.record(
        conn, tenant_id=tenant_id, actor=actor, action="domain.removed", target=f"domain:{name}",
        payload={"domain": name}, request_id=request_id,
    )  # fmt: skip
    return dict(row)


async def auto_join(
    conn: asyncpg.Connection,
    *,
    user_id: uuid.UUID,
    email: str | None,
    email_verified: bool,
    request_id: str | None = None,
    only_tenants: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """Make a user with a verified email of a registered domain a viewer of its tenant (the
    sign-in calls this). Returns the memberships added: none when the email is unverified, its
    domain unregistered, or the user a member already (their role is left as it is).
    ``only_tenants``: the slugs of the tenants whose provider verified the email (a tenant's
    own SSO vouches for addresses toward its tenants only); None for any tenant."""
    if not email or not email_verified or (domain := domain_of(email)) is None:
        return []
    tenant = await repository.tenant_of(conn, domain)
    if tenant is None or (only_tenants is not None and tenant["slug"] not in only_tenants):
        return []
    added = await users.add_membership(
        conn, tenant_id=tenant["id"], user_id=user_id, role=tenant["role"],
        created_by=f"domain:{domain}",
    )  # fmt: skip
    if added is None:
        return []
    await audit.record(
        conn, tenant_id=tenant["id"], actor=f"user:{user_id}", action="member.added",
        target=f"user:{user_id}",
        payload={"user_id": str(user_id), "role": added["role"], "via": "email_domain",
                 "domain": domain},
        request_id=request_id,
    )  # fmt: skip
    return [{"tenant_id": tenant["id"], "slug": tenant["slug"], "name": tenant["name"],
             "role": added["role"]}]  # fmt: skip


async def tenant_for_domain(conn: asyncpg.Connection, email: str) -> str | None:
    """The slug of the tenant that registered the domain of ``email`` (an address, or a bare
    domain), or None: the sign-in uses it to choose that tenant's SSO provider."""
    domain = domain_of(email if "@" in email else "@" + email)
    if domain is None:
        return None
    tenant = await repository.tenant_of(conn, domain)
    return tenant["slug"] if tenant else None
