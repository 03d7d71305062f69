"""Platform operators through the gateway: create, list, suspend and resume tenants; everyone
else is refused. And the configured operators a sign-in applies."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid

import asyncpg
import httpx

from common import db
from common.roles import Role
from gateway.admin import service as admin
from gateway.api_keys import service as api_keys
from gateway.settings import GatewaySettings, OidcProviderSettings
from tests.people import make_person
from tests.support import make_tenant

PROBLEM = "application/problem+json"
ADMIN = "/api/v1/admin/tenants"


async def _until(
    client: httpx.AsyncClient, path: str, headers: dict, status: int
) -> httpx.Response:
    """Poll until ``path`` answers ``status`` (a cached verdict lasts at most 5 s)."""
    deadline = time.monotonic() + 5
    while True:
        r = await client.get(path, headers=headers)
        if r.status_code == status:
            return r
        assert time.monotonic() < deadline, f"{path}: still {r.status_code} after 5 s: {r.text}"
        await asyncio.sleep(0.05)


async def _all_slugs(client: httpx.AsyncClient, headers: dict, **params: str) -> list[str]:
    slugs, cursor = [], None
    while True:
        query = {**params, "limit": "7", **({"cursor": cursor} if cursor else {})}
        r = await client.get(ADMIN, params=query, headers=headers)
        assert r.status_code == 200, r.text
        slugs += [t["slug"] for t in r.json()["items"]]
        if (cursor := r.json()["next_cursor"]) is None:
            return slugs


async def _entries(conn: asyncpg.Connection, tenant_id: uuid.UUID, action: str) -> list:
    return await conn.fetch(
        "SELECT user_id AS actor, target, payload FROM audit_logs"
        " WHERE tenant_id = $1 AND action = $2 ORDER BY seq",
        tenant_id, action,
    )  # fmt: skip


async def test_operator_creates_lists_suspends_and_resumes(suite, dsn, conn):
    operator = await make_person(conn, origin=suite.gateway, operator=True)
    slug = f"op-{secrets.token_hex(4)}"
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        body = {"slug": slug, "name": "Acme Ltd", "industry": " Fintech ", "size": 12}
        r = await client.post(ADMIN, json=body, headers=operator.headers)
        assert r.status_code == 201, r.text
        created = r.json()
        assert (created["slug"], created["industry"], created["size"]) == (slug, "fintech", 12)
        assert (created["status"], created["members"], created["installs"]) == ("active", 0, 0)
        assert created["suspended_at"] is None and created["suspended_reason"] is None
        tenant_id = uuid.UUID(created["id"])
        r = await client.post(ADMIN, json={"slug": slug, "name": "Again"}, headers=operator.headers)
        assert r.status_code == 409 and r.json()["code"] == "tenant_exists"
        (entry,) = await _entries(conn, tenant_id, "tenant.created")
        assert entry["actor"] == f"user:{operator.user_id}"

        # its people: a key and a member with a session
        key = await _key(dsn, slug)
        member = await make_person(conn, origin=suite.gateway, tenant_id=tenant_id, role="admin")
        for headers in (key, member.cookie):
            assert (await client.get("/api/v1/tenant", headers=headers)).status_code == 200
        r = await client.get(f"{ADMIN}/{slug}", headers=operator.cookie)
        assert r.status_code == 200 and r.json()["members"] == 1, r.text
        assert slug in await _all_slugs(client, operator.cookie)
        assert slug in await _all_slugs(client, operator.cookie, status="active")
        assert slug not in await _all_slugs(client, operator.cookie, status="suspended")

        r = await client.post(
            f"{ADMIN}/{slug}/suspend",
            json={"reason": " unpaid invoices "},
            headers=operator.headers,
        )
        assert r.status_code == 200, r.text
        suspended = r.json()
        assert suspended["status"] == "suspended" and suspended["suspended_reason"] == (
            "unpaid invoices"
        )
        for headers in (key, member.cookie):
            r = await _until(client, "/api/v1/tenant", headers, 403)
            assert r.headers["content-type"] == PROBLEM and r.json()["code"] == "tenant_suspended"
        r = await client.post("/api/v1/api-keys", json={"name": "x"}, headers=member.headers)
        assert r.status_code == 403 and r.json()["code"] == "tenant_suspended"
        # who am I still answers for the member (they are told why, not signed out)
        r = await client.get("/api/v1/me", headers=member.cookie)
        assert r.status_code == 200, r.text
        assert slug in await _all_slugs(client, operator.cookie, status="suspended")
        assert slug not in await _all_slugs(client, operator.cookie, status="active")

        # again: nothing changes, nothing is recorded
        r = await client.post(
            f"{ADMIN}/{slug}/suspend", json={"reason": "other"}, headers=operator.headers
        )
        assert r.status_code == 200 and r.json() == suspended
        (entry,) = await _entries(conn, tenant_id, "tenant.suspended")
        assert entry["actor"] == f"user:{operator.user_id}"
        assert entry["target"] == f"tenant:{tenant_id}"
        assert entry["payload"] == {"slug": slug, "reason": "unpaid invoices"}

        r = await client.post(f"{ADMIN}/{slug}/resume", headers=operator.headers)
        assert r.status_code == 200 and r.json()["status"] == "active", r.text
        assert r.json()["suspended_reason"] is None
        for headers in (key, member.cookie):
            await _until(client, "/api/v1/tenant", headers, 200)
        r = await client.post(f"{ADMIN}/{slug}/resume", headers=operator.headers)
        assert r.status_code == 200 and r.json()["status"] == "active"
        (entry,) = await _entries(conn, tenant_id, "tenant.resumed")
        assert entry["actor"] == f"user:{operator.user_id}"
        assert entry["payload"]["reason"] == "unpaid invoices"


async def test_a_new_tenant_s_admin_is_invited(suite, conn):
    operator = await make_person(conn, origin=suite.gateway, operator=True)
    slug = f"inv-{secrets.token_hex(4)}"
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        body = {"slug": slug, "name": "Invited Co", "admin_email": " Boss@Example.COM "}
        r = await client.post(ADMIN, json=body, headers=operator.headers)
        assert r.status_code == 201, r.text
        invitation = r.json()["invitation"]
        assert (invitation["email"], invitation["role"]) == ("boss@example.com", "admin")
        assert invitation["invited_by"] == f"user:{operator.user_id}"
        assert invitation["link"].startswith(f"{suite.gateway}/auth/invitations/")
        assert invitation["emailed"] is False  # no SMTP server in the suite
        tenant_id = uuid.UUID(r.json()["id"])
        (entry,) = await _entries(conn, tenant_id, "invitation.created")
        assert entry["actor"] == f"user:{operator.user_id}"
        assert invitation["link"].rpartition("/")[2] not in str(entry["payload"])

        # without one, none; a bad address creates nothing
        r = await client.post(
            ADMIN, json={"slug": slug + "-b", "name": "B"}, headers=operator.headers
        )
        assert r.status_code == 201 and r.json()["invitation"] is None
        r = await client.post(
            ADMIN, json={"slug": slug + "-c", "name": "C", "admin_email": "nope"},
            headers=operator.headers,
        )  # fmt: skip
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert await conn.fetchval("SELECT count(*) FROM tenants WHERE slug = $1", slug + "-c") == 0


async def _key(dsn: str, slug: str) -> dict[str, str]:
    connection = await db.connect(dsn)
    try:
        async with connection.transaction():
            tenant_id = await connection.fetchval("SELECT id FROM tenants WHERE slug = $1", slug)
            key = await api_keys.create(
                connection, tenant_id=tenant_id, name="k", role=Role.admin, created_by="test"
            )
    finally:
        await connection.close()
    return {"Authorization": f"Bearer {key['key']}"}


async def test_everyone_but_operators_is_refused(suite, dsn, conn):
    tenant = await make_tenant(dsn)  # its key is an admin's
    admin_person = await make_person(
        conn, origin=suite.gateway, tenant_id=tenant.tenant_id, role="admin"
    )
    calls = [
        ("GET", ADMIN, None),
        ("POST", ADMIN, {"slug": f"x-{secrets.token_hex(3)}", "name": "X"}),
        ("GET", f"{ADMIN}/{tenant.slug}", None),
        ("POST", f"{ADMIN}/{tenant.slug}/suspend", {"reason": "because"}),
        ("POST", f"{ADMIN}/{tenant.slug}/resume", None),
    ]
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        for method, path, body in calls:
            for headers in (tenant.headers, admin_person.headers):
                r = await client.request(method, path, json=body, headers=headers)
                assert r.status_code == 403, (method, path, r.text)
                assert r.headers["content-type"] == PROBLEM
                assert r.json()["code"] == "operator_required"
            r = await client.request(method, path, json=body)
            assert r.status_code == 401, (method, path, r.text)
        r = await client.get(f"{ADMIN}/{tenant.slug}", headers=admin_person.cookie)
        assert r.status_code == 403 and r.json()["code"] == "operator_required"
    # nothing was created or suspended
    assert (
        await conn.fetchval("SELECT suspended_at FROM tenants WHERE id = $1", tenant.tenant_id)
        is None
    )


async def test_bad_input_is_422_and_unknown_tenants_404(suite, dsn, conn):
    operator = await make_person(conn, origin=suite.gateway, operator=True)
    tenant = await make_tenant(dsn)
    h = operator.headers
    bad_bodies = [
        ({"slug": "Not A Slug", "name": "x"}, "invalid_slug"),
        # another tenant's id as a slug: a JWT naming one would be ambiguous
        ({"slug": str(tenant.tenant_id), "name": "x"}, "invalid_slug"),
        ({"slug": "ok-slug"}, "validation_failed"),
        ({"slug": "ok-slug", "name": "  "}, "validation_failed"),
        ({"slug": "ok-slug", "name": "x", "size": 0}, "validation_failed"),
        ({"slug": "ok-slug", "name": "x", "owner": "y"}, "validation_failed"),
        ({"slug": "x" * 64, "name": "x"}, "validation_failed"),
    ]
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        for body, code in bad_bodies:
            r = await client.post(ADMIN, json=body, headers=h)
            assert r.status_code == 422, (body, r.text)
            assert r.headers["content-type"] == PROBLEM and r.json()["code"] == code, r.text
        r = await client.post(
            ADMIN, content=b"{", headers={**h, "content-type": "application/json"}
        )
        assert r.status_code == 422 and r.json()["code"] == "invalid_json"
        for body in ({}, {"reason": "   "}, {"reason": "x" * 501}, {"reason": "a\x00b"}, ["x"]):
            r = await client.post(f"{ADMIN}/{tenant.slug}/suspend", json=body, headers=h)
            assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, (body, r.text)
        for params in ({"status": "gone"}, {"limit": "0"}, {"cursor": "nope"}):
            r = await client.get(ADMIN, params=params, headers=operator.cookie)
            assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, (params, r.text)
        assert r.json()["code"] == "invalid_cursor"
        missing = f"gone-{secrets.token_hex(3)}"
        r = await client.get(f"{ADMIN}/{missing}", headers=operator.cookie)
        assert r.status_code == 404 and r.json()["code"] == "tenant_not_found"
        for action, body in (("suspend", {"reason": "x"}), ("resume", None)):
            r = await client.post(f"{ADMIN}/{missing}/{action}", json=body, headers=h)
            assert r.status_code == 404 and r.json()["code"] == "tenant_not_found"
    assert await conn.fetchval("SELECT count(*) FROM tenants WHERE slug = 'ok-slug'") == 0
    assert (
        await conn.fetchval("SELECT suspended_at FROM tenants WHERE id = $1", tenant.tenant_id)
        is None
    )


# --------------------------------------------------------------- operators from configuration


def _settings(**operators: tuple[str, ...]) -> GatewaySettings:
    providers = {
        name: OidcProviderSettings(
            issuer=f"https://{name}.idp.test.invalid", client_id="seedos", operators=subjects
        )
        for name, subjects in operators.items()
    }
    return GatewaySettings(env="development", internal_token_key="t" * 40,
                           oidc_providers=providers)  # fmt: skip


async def _configured(conn, person, provider: str, settings: GatewaySettings) -> bool:
    async with conn.transaction():
        return await admin.ensure_configured_operator(
            conn, user_id=person.user_id, provider_name=provider, subject=person.subject,
            settings=settings,
        )  # fmt: skip


async def _operator_entries(conn, user_id) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT action, user_id AS actor FROM audit_logs WHERE tenant_id IS NULL"
        " AND starts_with(action, 'operator.')"
        " AND target = $1 ORDER BY seq",
        f"user:{user_id}",
    )
    return [(r["action"], r["actor"]) for r in rows]


async def test_configured_subjects_become_operators(suite, conn):
    person = await make_person(conn, origin=suite.gateway)
    other = await make_person(conn, origin=suite.gateway)
    settings = _settings(platform=(person.subject, "someone-else"), partner=())

    assert await _configured(conn, person, "platform", settings) is True
    added_by = "SELECT added_by FROM platform_operators WHERE user_id = $1"
    assert await conn.fetchval(added_by, person.user_id) == "config:platform"
    # signing in again adds and records nothing more
    assert await _configured(conn, person, "platform", settings) is True
    assert await _operator_entries(conn, person.user_id) == [("operator.added", "config:platform")]
    # a subject not listed, or listed for another provider, is no operator
    assert await _configured(conn, other, "platform", settings) is False
    assert await _configured(conn, person, "partner", settings) is True  # added by platform
    assert await _configured(conn, other, "unknown-provider", settings) is False
    assert await conn.fetchval(added_by, other.user_id) is None

    # taken off the list: no longer an operator at the next sign-in through that provider
    assert await _configured(conn, person, "platform", _settings(platform=())) is False
    assert await conn.fetchval(added_by, person.user_id) is None
    assert (await _operator_entries(conn, person.user_id))[-1] == (
        "operator.removed", "config:platform")  # fmt: skip


async def test_operators_added_otherwise_are_kept(suite, conn):
    person = await make_person(conn, origin=suite.gateway)
    async with conn.transaction():
        assert await admin.add_operator(conn, person.user_id, actor="system:cli") is True
    # the configuration lists nobody: an operator from the CLI stays one
    assert await _configured(conn, person, "platform", _settings(platform=())) is True
    assert await _operator_entries(conn, person.user_id) == [("operator.added", "system:cli")]
