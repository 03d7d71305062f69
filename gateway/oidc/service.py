"""Signing people in: which provider, the sign-in flow bound to the browser that started it,
and what a completed sign-in does (the user, operators from configuration, email domains, an
invitation, the tenant, the session).

The browser's ``__Host-seedos_login`` cookie holds a 256-bit secret; ``state``, ``nonce`` and
the PKCE verifier are derived from it and the database keeps only its hash, so the callback
succeeds only in the browser that started the sign-in, once, within the flow's lifetime."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from common.errors import InvalidRequest, NotFound, SeedosError
from gateway.admin import service as admin
from gateway.domains import service as domains
from gateway.invitations import service as invitations
from gateway.oidc import repository
from gateway.oidc.provider import Claims, Provider, SignInFailed
from gateway.sessions import repository as session_repository
from gateway.sessions import service as sessions
from gateway.sessions import tokens
from gateway.settings import DEVELOPMENT_PROVIDER, GatewaySettings
from gateway.users import repository as users_repository
from gateway.users import service as users

CALLBACK_PATH = "/auth/callback"
DEV_ISSUER = "urn:seedos:development"
DEV_SUBJECT = "demo-admin"


class ProviderNotFound(NotFound):
    code, title = "identity_provider_not_found", "No such identity provider"


class LoginFlowInvalid(SeedosError):
    status, code, title = 400, "login_flow_invalid", "Sign-in not recognised"


class InvalidReturnTo(InvalidRequest):
    code = "invalid_return_to"


class Providers:
    """The configured providers, by name, and how a sign-in chooses one."""

    def __init__(self, settings: GatewaySettings) -> None:
        redirect_uri = settings.public_url + CALLBACK_PATH
        self.by_name = {
            name: Provider(name, conf, redirect_uri=redirect_uri,
                           timeout=settings.oidc_timeout_seconds)
            for name, conf in settings.oidc_providers.items()
        }  # fmt: skip
        self._by_tenant = {slug: p for p in self.by_name.values() for slug in p.settings.tenants}
        self.platform = [p for p in self.by_name.values() if not p.settings.tenants]

    async def close(self) -> None:
        for provider in self.by_name.values():
            await provider.close()

    @staticmethod
    def issuer_origins(settings: GatewaySettings) -> list[str]:
        """Where a form may send the browser (the CSP's form-action): sign-out goes on to the
        provider's logout page."""
        return sorted({_origin(p.issuer) for p in settings.oidc_providers.values()})

    def choose(
        self,
        *,
        name: str | None = None,
        tenant: str | None = None,
        domain: str | None = None,
    ) -> Provider:
        if name is not None:
            if name not in self.by_name:
                raise ProviderNotFound(f"no identity provider named '{name}'")
            return self.by_name[name]
        for slug in (tenant, domain):
            if slug and slug in self._by_tenant:
                return self._by_tenant[slug]
        if not self.platform:
            raise ProviderNotFound("no identity provider is configured for signing in here")
        return self.platform[0]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def vouches(settings: GatewaySettings, provider: str, tenant_slug: str) -> bool:
    """Whether a verified email from ``provider`` counts toward ``tenant_slug``: a platform
    provider's everywhere, a tenant's own SSO's only toward its tenants (its administrators
    can make it assert any address), an unknown provider's nowhere."""
    conf = settings.oidc_providers.get(provider)
    return conf is not None and (not conf.tenants or tenant_slug in conf.tenants)


async def vouched_email(
    conn: asyncpg.Connection, user_id: uuid.UUID, *, token: str, settings: GatewaySettings
) -> tuple[str | None, bool]:
    """The invited address if one of the person's identities has it verified by a provider
    that vouches toward the inviting tenant (as at sign-in: a tenant's own SSO only toward its
    tenants), else their email as it stands (the accept route's check; sign-in checks the
    provider it signs in with)."""
    invited = await invitations.invitation_for(conn, token)
    if invited is not None:
        same = [i for i in await users_repository.identities(conn, user_id)
                if i["email"] and i["email"].strip().lower() == invited.email.lower()]  # fmt: skip
        for identity in same:
            if identity["email_verified"] and vouches(
                settings, identity["provider"], invited.tenant_slug
            ):
                return identity["email"], True
        if same:  # the address, but not verified by a provider trusted for that tenant
            return same[0]["email"], False
    user = await users.get(conn, user_id)
    return user["email"], user["email_verified"]


def check_return_to(value: str | None) -> str | None:
    """A path on this site only (``/integrations?x=1``): anything else is an open redirect."""
    if value is None or value == "":
        return None
    if len(value) > 2000 or any(ord(c) < 0x21 or c == "\\" for c in value):
        raise InvalidReturnTo("return_to has characters a path cannot have")
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        raise InvalidReturnTo("return_to must be a path on this site, such as /integrations")
    return value


async def domain_tenant(conn: asyncpg.Connection, email: str | None) -> str | None:
    """The tenant that registered the domain of a typed work email, if any (domains' rule,
    IDNA normalisation included)."""
    if not email or "@" not in email:
        return None
    return await domains.tenant_for_domain(conn, email)


@dataclass(frozen=True, slots=True)
class Flow:
    secret: str  # the login cookie's value

    @property
    def state(self) -> str:
        return tokens.derive(self.secret, "state")

    @property
    def nonce(self) -> str:
        return tokens.derive(self.secret, "nonce")

    @property
    def verifier(self) -> str:
        return tokens.derive(self.secret, "pkce")


async def begin(
    conn: asyncpg.Connection,
    *,
    provider: str,
    tenant_slug: str | None,
    return_to: str | None,
    invitation: str | None,
    ttl_seconds: float,
) -> Flow:
    flow = Flow(tokens.new_secret())
    await repository.insert_flow(
        conn, flow_hash=tokens.digest(flow.secret), provider=provider, tenant_slug=tenant_slug,
        return_to=return_to, invitation_hash=tokens.digest(invitation) if invitation else None,
        ttl_seconds=ttl_seconds,
    )  # fmt: skip
    return flow


async def consume(conn: asyncpg.Connection, secret: str | None, state: str | None) -> dict:
    """The flow this browser started, used up; refused when the browser has none (another
    browser, or its cookie expired), when it was used already, or when ``state`` is not the
    flow's (forged)."""
    if not tokens.plausible(secret):
        raise LoginFlowInvalid(
            "this browser did not start a sign-in (or it expired): sign in again",
            code="login_flow_missing",
        )
    assert secret is not None
    row = await repository.consume_flow(conn, tokens.digest(secret))
    if row is None:
        raise LoginFlowInvalid("this sign-in was completed or abandoned already: sign in again")
    if row["expired"]:
        raise LoginFlowInvalid("the sign-in took too long: sign in again", code="login_expired")
    if not tokens.same(state, Flow(secret).state):
        raise LoginFlowInvalid("the sign-in's state does not match", code="state_mismatch")
    return dict(row)


@dataclass(frozen=True, slots=True)
class SignedIn:
    issued: sessions.Issued
    user: dict[str, Any]
    return_to: str | None
    notice: str | None = None  # a problem code to show after signing in (an invitation's)


async def complete(
    conn: asyncpg.Connection,
    claims: Claims,
    *,
    provider: Provider,
    flow: dict[str, Any],
    invitation_hash: bytes | None,
    settings: GatewaySettings,
    timeouts: sessions.Timeouts,
    replacing: str | None,
    user_agent: str | None,
    client_address: str | None,
    request_id: str | None,
) -> SignedIn:
    """The user behind ``claims`` signs in: operators from configuration, automatic
    membership by a registered email domain (verified emails only), the invitation the
    sign-in carried, then a session in the tenant asked for (or the only or first one)."""
    identity = users.Identity(
        issuer=claims.issuer, subject=claims.subject, provider=provider.name,
        email=claims.email, email_verified=claims.email_verified, name=claims.name,
    )  # fmt: skip
    user, _ = await users.sign_in(conn, identity)
    user_id = user["id"]
    await admin.ensure_configured_operator(
        conn, user_id=user_id, provider_name=provider.name, subject=claims.subject,
        settings=settings,
    )  # fmt: skip
    # What the provider's "verified" email may join: a platform provider's counts for any
    # tenant; a tenant's own SSO (run by that tenant's admins) only toward its tenants, or it
    # could assert anyone's address and join other tenants by their domains or invitations.
    vouches_for = provider.settings.tenants or None
    # a tenant the sign-in names is honoured only among memberships it did not just make (a
    # link to /auth/login?tenant=<a tenant that took your domain> lands you where you were)
    before = {m["slug"] for m in await users.memberships(conn, user_id)}
    joined, notice = await _join(
        conn, identity, user_id=user_id, invitation_hash=invitation_hash, request_id=request_id,
        vouches_for=vouches_for,
    )  # fmt: skip
    asked = flow.get("tenant_slug")
    tenant_id, role = await _choose_tenant(
        conn, user_id, asked if asked in before else None, joined, before=before
    )
    issued = await sessions.start(
        conn, user_id=user_id, tenant_id=tenant_id, role=role, provider=provider.name,
        issuer=claims.issuer, timeouts=timeouts, user_agent=user_agent,
        client_address=client_address, replacing=replacing, request_id=request_id,
    )  # fmt: skip
    return SignedIn(issued, user, flow.get("return_to"), notice)


async def _join(
    conn: asyncpg.Connection,
    identity: users.Identity,
    *,
    user_id: uuid.UUID,
    invitation_hash: bytes | None,
    request_id: str | None,
    vouches_for: Collection[str] | None,
) -> tuple[uuid.UUID | None, str | None]:
    """Memberships a sign-in brings: the invitation's tenant (returned, to sign into it), and
    tenants whose registered domain the verified email is in. An invitation that cannot be
    accepted does not stop the sign-in: its problem code comes back as a notice (a refusal
    for another email stays in the tenant's audit trail)."""
    joined, notice = None, None
    if invitation_hash is not None:
        verified = identity.email_verified
        if vouches_for is not None:  # a tenant's SSO vouches for emails toward its tenants only
            invited = await invitations.invitation_for(conn, token_hash=invitation_hash)
            verified = verified and invited is not None and invited.tenant_slug in vouches_for
        try:
            membership = await invitations.accept(
                conn, token_hash=invitation_hash, user_id=user_id, email=identity.email,
                email_verified=verified, request_id=request_id,
            )  # fmt: skip
            joined = membership["tenant_id"]
        except (invitations.InvitationInvalid, invitations.InvitationEmailMismatch,
                invitations.AlreadyMember) as exc:  # fmt: skip
            notice = exc.code
    await domains.auto_join(
        conn, user_id=user_id, email=identity.email, email_verified=identity.email_verified,
        request_id=request_id, only_tenants=vouches_for,
    )  # fmt: skip
    return joined, notice


async def _choose_tenant(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    slug: str | None,
    joined: uuid.UUID | None,
    *,
    before: Collection[str],
) -> tuple[uuid.UUID | None, str | None]:
    """The invitation's tenant, else the one asked for, else the last used, else one they
    belonged to before this sign-in, else any (a tenant that joined them by domain just now)."""
    memberships = await users.memberships(conn, user_id)
    by_slug = {m["slug"]: m for m in memberships}
    for m in memberships:
        if m["tenant_id"] == joined:
            return m["tenant_id"], m["role"]
    if slug and slug in by_slug:
        return by_slug[slug]["tenant_id"], by_slug[slug]["role"]
    # where they were last (a tenant they joined by its domain since does not take over)
    last = await session_repository.last_tenant(conn, user_id)
    for m in memberships:
        if m["tenant_id"] == last:
            return m["tenant_id"], m["role"]
    ranked = sorted(memberships, key=lambda m: m["slug"] not in before)  # stable: by slug
    if ranked:
        return ranked[0]["tenant_id"], ranked[0]["role"]
    return None, None


async def dev_sign_in(
    conn: asyncpg.Connection,
    *,
    tenant_slug: str,
    timeouts: sessions.Timeouts,
    replacing: str | None,
    user_agent: str | None,
    client_address: str | None,
    request_id: str | None,
) -> SignedIn:
    """Development mode only (the settings refuse it elsewhere): the demo tenant's admin,
    without a provider."""
    tenant = await repository.tenant_by_slug(conn, tenant_slug)
    if tenant is None:
        raise SignInFailed(f"no tenant '{tenant_slug}': run `seedos up` to load the demo data")
    identity = users.Identity(
        issuer=DEV_ISSUER, subject=DEV_SUBJECT, provider=DEVELOPMENT_PROVIDER,
        email=None, email_verified=False, name="Demo admin",
    )  # fmt: skip
    user, _ = await users.sign_in(conn, identity)
    await users_repository.add_membership(
        conn, tenant_id=tenant["id"], user_id=user["id"], role="admin", created_by="system:dev"
    )
    membership = await users.membership(conn, user_id=user["id"], tenant_id=tenant["id"])
    assert membership is not None
    issued = await sessions.start(
        conn, user_id=user["id"], tenant_id=tenant["id"], role=membership["role"],
        provider=DEVELOPMENT_PROVIDER, issuer=DEV_ISSUER, timeouts=timeouts,
        user_agent=user_agent, client_address=client_address, replacing=replacing,
        request_id=request_id,
    )  # fmt: skip
    return SignedIn(issued, user, None)
