"""A tenant's own SSO provider is run by that tenant's admins, who can make it assert any
address as verified: its emails count toward its own tenants only (never another tenant's
domain or invitation), while a platform provider's count everywhere."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg

from common import db
from gateway.invitations import service as invitations
from gateway.oidc import service as oidc
from gateway.oidc.provider import Claims, Provider
from gateway.sessions import service as sessions
from gateway.settings import GatewaySettings
from gateway.tenants import service as tenants
from gateway.users import service as users

TIMEOUTS = sessions.Timeouts(1800, 43200)


async def _tenant(conn: asyncpg.Connection, domain: str | None = None) -> dict:
    slug = f"t-{secrets.token_hex(5)}"
    async with conn.transaction():
        tenant = await tenants.create(conn, slug=slug, name=slug)
        if domain:
            await conn.execute(
                "INSERT INTO tenant_domains (domain, tenant_id, created_by) VALUES ($1, $2, 't')",
                domain, tenant["id"],
            )  # fmt: skip
    return tenant


def _settings(sso_tenant: str) -> GatewaySettings:
    return GatewaySettings(
        _env_file=None,
        env="production",
        internal_token_key="k" * 40,
        oidc_providers={
            "platform": {"issuer": "https://login.platform.test", "client_id": "c"},
            "acme-sso": {"issuer": "https://acme.okta.test", "client_id": "c",
                         "tenants": [sso_tenant]},
        },
    )  # fmt: skip


async def _sign_in(conn, settings, name: str, email: str, invitation: str | None = None):
    conf = settings.oidc_providers[name]
    provider = Provider(name, conf, redirect_uri="https://x.test/auth/callback", timeout=1)
    claims = Claims(issuer=conf.issuer, subject=f"s-{secrets.token_hex(4)}", email=email,
                    email_verified=True, name=None)  # fmt: skip
    async with conn.transaction():
        signed = await oidc.complete(
            conn, claims, provider=provider, flow={}, settings=settings, timeouts=TIMEOUTS,
            invitation_hash=invitations.digest(invitation) if invitation else None,
            replacing=None, user_agent=None, client_address=None, request_id=None,
        )  # fmt: skip
    await provider.close()
    return signed


async def test_a_tenants_sso_does_not_join_other_tenants_by_domain(conn) -> None:
    domain = f"globex-{secrets.token_hex(3)}.test"
    acme, globex = (
        await _tenant(conn, f"acme-{secrets.token_hex(3)}.test"),
        await _tenant(conn, domain),
    )
    settings = _settings(acme["slug"])
    planted = await _sign_in(conn, settings, "acme-sso", f"ceo@{domain}")
    assert await users.memberships(conn, planted.user["id"]) == []
    assert planted.issued.session["tenant_id"] is None
    # the platform's provider vouches for the same address: it joins by the domain
    real = await _sign_in(conn, settings, "platform", f"ceo@{domain}")
    joined = await users.memberships(conn, real.user["id"])
    assert [(m["slug"], m["role"]) for m in joined] == [(globex["slug"], "viewer")]


async def test_a_tenants_sso_accepts_only_its_own_tenants_invitations(conn) -> None:
    acme, globex = await _tenant(conn), await _tenant(conn)
    settings = _settings(acme["slug"])
    email = f"new-{secrets.token_hex(3)}@example.test"
    made = {}
    async with conn.transaction():
        for tenant in (acme, globex):
            made[tenant["slug"]] = await invitations.create(
                conn, tenant_id=tenant["id"], email=email, role="editor", invited_by="t",
                inviter_role="admin", public_url="https://x.test", valid_days=7,
            )  # fmt: skip
    tokens = {slug: c.link.rpartition("=")[2].rpartition("/")[2] for slug, c in made.items()}
    refused = await _sign_in(conn, settings, "acme-sso", email, tokens[globex["slug"]])
    assert refused.notice == "invitation_email_mismatch"
    accepted = await _sign_in(conn, settings, "acme-sso", email, tokens[acme["slug"]])
    assert accepted.notice is None
    assert accepted.issued.session["tenant_id"] == acme["id"]


async def test_two_first_sign_ins_of_one_identity_make_one_user(dsn) -> None:
    identity = users.Identity(
        issuer="https://login.platform.test", subject=f"s-{secrets.token_hex(4)}",
        provider="platform", email=None, email_verified=False, name=None,
    )  # fmt: skip

    async def first_sign_in() -> dict:
        connection = await db.connect(dsn)
        try:
            async with connection.transaction():
                user, _ = await users.sign_in(connection, identity)
                await asyncio.sleep(0.2)  # both are inside at once, unless serialised
            return user
        finally:
            await connection.close()

    one, two = await asyncio.gather(first_sign_in(), first_sign_in())
    assert one["id"] == two["id"]


async def test_sign_in_returns_to_the_tenant_last_used(conn) -> None:
    first, second = sorted([await _tenant(conn), await _tenant(conn)], key=lambda t: t["slug"])
    settings = _settings(first["slug"])
    email = f"p-{secrets.token_hex(3)}@example.test"
    person = await _sign_in(conn, settings, "platform", email)
    for tenant in (first, second):
        await conn.execute(
            "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'viewer')",
            tenant["id"], person.user["id"],
        )  # fmt: skip
    subject = await conn.fetchval(
        "SELECT subject FROM user_identities WHERE user_id = $1", person.user["id"]
    )
    conf = settings.oidc_providers["platform"]
    provider = Provider("platform", conf, redirect_uri="https://x.test/cb", timeout=1)
    claims = Claims(issuer=conf.issuer, subject=subject, email=email, email_verified=True,
                    name=None)  # fmt: skip

    async def again() -> oidc.SignedIn:
        async with conn.transaction():
            return await oidc.complete(
                conn, claims, provider=provider, flow={}, settings=settings, timeouts=TIMEOUTS,
                invitation_hash=None, replacing=None, user_agent=None, client_address=None,
                request_id=None,
            )  # fmt: skip

    assert (await again()).issued.session["tenant_id"] == first["id"]  # none used yet: first
    await conn.execute(
        "UPDATE sessions SET tenant_id = $1 WHERE user_id = $2", second["id"], person.user["id"]
    )
    assert (await again()).issued.session["tenant_id"] == second["id"]
    await provider.close()


async def test_a_tenant_named_at_sign_in_counts_only_if_you_were_a_member_before(conn) -> None:
    """/auth/login?tenant=<a tenant that registered your domain first> does not land you
    there: it joined you as a viewer just now."""
    home = await _tenant(conn)
    domain = f"victim-{secrets.token_hex(3)}.test"
    squatter = await _tenant(conn, domain)
    settings = _settings(home["slug"])
    email = f"alice@{domain}"
    conf = settings.oidc_providers["platform"]
    provider = Provider("platform", conf, redirect_uri="https://x.test/cb", timeout=1)
    claims = Claims(issuer=conf.issuer, subject=f"s-{secrets.token_hex(4)}", email=email,
                    email_verified=True, name=None)  # fmt: skip
    async with conn.transaction():
        user, _ = await users.sign_in(conn, users.Identity(
            issuer=conf.issuer, subject=claims.subject, provider="platform", email=email,
            email_verified=True, name=None))  # fmt: skip
        await conn.execute(
            "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'admin')",
            home["id"], user["id"],
        )  # fmt: skip
    async with conn.transaction():
        signed = await oidc.complete(
            conn, claims, provider=provider, flow={"tenant_slug": squatter["slug"]},
            settings=settings, timeouts=TIMEOUTS, invitation_hash=None, replacing=None,
            user_agent=None, client_address=None, request_id=None,
        )  # fmt: skip
    await provider.close()
    joined = {m["slug"] for m in await users.memberships(conn, user["id"])}
    assert joined == {home["slug"], squatter["slug"]}  # the domain joined them as a viewer
    assert signed.issued.session["tenant_id"] == home["id"]  # but not into it


def test_which_provider_vouches_for_which_tenant() -> None:
    settings = _settings("acme")
    assert oidc.vouches(settings, "platform", "acme") and oidc.vouches(settings, "platform", "x")
    assert oidc.vouches(settings, "acme-sso", "acme")
    assert not oidc.vouches(settings, "acme-sso", "globex")
    assert not oidc.vouches(settings, "removed-since", "acme")
    assert not oidc.vouches(settings, "development", "demo")
