"""/api/v1/tenant/domains through the real gateway, and what the sign-in does with them:
people with a verified email of a tenant's domain join it as viewers."""

from __future__ import annotations

import secrets

import httpx
import pytest

from common import db
from common.roles import Role
from gateway.domains import service as domains
from tests.people import audit_of, make_person
from tests.support import TenantKey, add_key, make_tenant

PROBLEM = "application/problem+json"


def unique(name: str = "corp") -> str:
    return f"{name}-{secrets.token_hex(4)}.example"


async def add(client: httpx.AsyncClient, t: TenantKey, domain: str) -> httpx.Response:
    return await client.post("/api/v1/tenant/domains", json={"domain": domain}, headers=t.headers)


async def test_admins_register_domains_and_every_member_reads_them(suite, dsn):
    t = await make_tenant(dsn)
    plain, umlaut = unique(), f"bücher-{secrets.token_hex(3)}.example"
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        r = await add(client, t, f"  {plain.upper()}. ")
        assert r.status_code == 201, r.text
        assert r.json()["domain"] == plain and r.json()["role"] == "viewer"
        assert r.json()["created_by"] == f"apikey:{t.key_id}"
        r = await add(client, t, umlaut)
        assert r.status_code == 201, r.text
        puny = r.json()["domain"]
        assert puny == umlaut.encode("idna").decode() and puny.startswith("xn--")

        viewer = await add_key(dsn, t, Role.viewer)
        r = await client.get("/api/v1/tenant/domains", headers=viewer.headers)
        assert r.status_code == 200, r.text
        assert [d["domain"] for d in r.json()["items"]] == sorted([plain, puny])
        assert r.json()["next_cursor"] is None
        r = await add(client, viewer, unique())
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
        r = await client.delete(f"/api/v1/tenant/domains/{plain}", headers=viewer.headers)
        assert r.status_code == 403

        # removed by its Unicode name as well as its ASCII one
        r = await client.delete(f"/api/v1/tenant/domains/{umlaut}", headers=t.headers)
        assert r.status_code == 200 and r.json()["domain"] == puny, r.text
        r = await client.delete(f"/api/v1/tenant/domains/{umlaut}", headers=t.headers)
        assert r.status_code == 404 and r.json()["code"] == "domain_not_found"
        r = await client.get("/api/v1/tenant/domains", headers=t.headers)
        assert [d["domain"] for d in r.json()["items"]] == [plain]

    trail = await audit_of(dsn, t.tenant_id, "domain.")
    assert [(e["action"], e["actor"], e["target"]) for e in trail] == [
        ("domain.added", f"apikey:{t.key_id}", f"domain:{plain}"),
        ("domain.added", f"apikey:{t.key_id}", f"domain:{puny}"),
        ("domain.removed", f"apikey:{t.key_id}", f"domain:{puny}"),
    ]


@pytest.mark.parametrize(
    ("domain", "code"),
    [
        ("localhost", "invalid_domain"),
        ("10.0.0.1", "invalid_domain"),
        ("a..example", "invalid_domain"),
        ("-corp.example", "invalid_domain"),
        ("corp-.example", "invalid_domain"),
        ("under_score.example", "invalid_domain"),
        ("x" * 64 + ".example", "invalid_domain"),
        ("ada@corp.example", "invalid_domain"),
        ("exa mple.com", "invalid_domain"),
        ("gmail.com", "public_email_domain"),
        ("GMail.com.", "public_email_domain"),
        ("outlook.com", "public_email_domain"),
        ("proton.me", "public_email_domain"),
        ("gmx.de", "public_email_domain"),
        ("yandex.ru", "public_email_domain"),
        ("yahoo.co.uk", "public_email_domain"),
        ("mail.ru", "public_email_domain"),
    ],
)
async def test_what_is_not_a_company_domain_is_refused(suite, dsn, domain, code):
    t = await make_tenant(dsn)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        r = await add(client, t, domain)
        assert r.status_code == 422 and r.json()["code"] == code, r.text
        assert r.headers["content-type"] == PROBLEM
        r = await client.get("/api/v1/tenant/domains", headers=t.headers)
        assert r.json()["items"] == []


async def test_a_domain_belongs_to_one_tenant(suite, dsn):
    a, b = await make_tenant(dsn), await make_tenant(dsn)
    domain = unique()
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        assert (await add(client, a, domain)).status_code == 201
        for t in (b, a):
            r = await add(client, t, domain.upper())
            assert r.status_code == 409 and r.json()["code"] == "domain_taken", r.text
        r = await client.delete(f"/api/v1/tenant/domains/{domain}", headers=b.headers)
        assert r.status_code == 404  # not b's to remove
        for extra in ({"domain": unique(), "role": "admin"}, {}, {"domain": ""}):
            r = await client.post("/api/v1/tenant/domains", json=extra, headers=a.headers)
            assert r.status_code == 422 and r.json()["code"] == "validation_failed"


async def test_verified_people_of_the_domain_join_as_viewers(suite, dsn):
    t = await make_tenant(dsn)
    domain = unique("acme")
    conn = await db.connect(dsn)
    try:
        await domains.add(conn, tenant_id=t.tenant_id, domain=domain, actor="test")
        assert await domains.tenant_for_domain(conn, f"Someone@{domain.upper()}") == t.slug
        assert await domains.tenant_for_domain(conn, domain) == t.slug
        assert await domains.tenant_for_domain(conn, f"x@sub.{domain}") is None
        assert await domains.tenant_for_domain(conn, "x@nowhere.example") is None
        assert await domains.tenant_for_domain(conn, "not an email") is None

        ada = await make_person(conn, origin=suite.gateway, email=f"Ada@{domain.upper()}")
        async with conn.transaction():
            joined = await domains.auto_join(
                conn, user_id=ada.user_id, email=f"Ada@{domain.upper()}", email_verified=True
            )
        assert joined == [{"tenant_id": t.tenant_id, "slug": t.slug, "name": f"Tenant {t.slug}",
                           "role": "viewer"}]  # fmt: skip
        # once only
        again = await domains.auto_join(
            conn, user_id=ada.user_id, email=f"ada@{domain}", email_verified=True
        )
        assert again == []
        # an unverified address, another domain, or none joins nothing
        eve = await make_person(conn, origin=suite.gateway, email=f"eve@{domain}",
                                email_verified=False)  # fmt: skip
        for email, verified in ((f"eve@{domain}", False), ("eve@elsewhere.example", True),
                                (None, True), ("no-at-sign", True)):  # fmt: skip
            assert (
                await domains.auto_join(
                    conn, user_id=eve.user_id, email=email, email_verified=verified
                )
                == []
            )
        # a member keeps the role they have
        boss = await make_person(conn, origin=suite.gateway, email=f"boss@{domain}",
                                 tenant_id=t.tenant_id, role="admin")  # fmt: skip
        assert (
            await domains.auto_join(
                conn, user_id=boss.user_id, email=f"boss@{domain}", email_verified=True
            )
            == []
        )
    finally:
        await conn.close()

    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        r = await client.get("/api/v1/members", headers=t.headers)
        got = {m["user_id"]: (m["role"], m["added_by"]) for m in r.json()["items"]}
    assert got == {str(ada.user_id): ("viewer", f"domain:{domain}"),
                   str(boss.user_id): ("admin", "test")}  # fmt: skip
    joins = await audit_of(dsn, t.tenant_id, "member.added")
    assert [(e["actor"], e["payload"]) for e in joins] == [(
        f"user:{ada.user_id}",
        {"user_id": str(ada.user_id), "role": "viewer", "via": "email_domain", "domain": domain},
    )]  # fmt: skip
