"""``seedos operator ...`` and ``seedos tenant suspend/resume/list`` as an operator runs them:
a real process against the session's database, and the running gateway for what callers see."""

from __future__ import annotations

import asyncio
import secrets
import time

import asyncpg
import httpx
import pytest

from tests.people import make_person
from tests.seedos_cli.test_cli import seedos
from tests.support import make_tenant


async def run(*args: str, dsn: str):
    return await asyncio.to_thread(seedos, *args, dsn=dsn, check=False)


@pytest.mark.parametrize(
    "args",
    [["operator"], ["operator", "add"], ["operator", "remove"], ["operator", "list"],
     ["tenant", "list"], ["tenant", "suspend"], ["tenant", "resume"], ["tenants"]],
    ids=" ".join,
)  # fmt: skip
def test_help(args, dsn):
    out = seedos(*args, "--help", dsn=dsn)
    assert "Usage" in out.stdout


async def _added_by(conn: asyncpg.Connection, user_id) -> str | None:
    return await conn.fetchval(
        "SELECT added_by FROM platform_operators WHERE user_id = $1", user_id
    )


async def test_operator_add_list_remove(suite, dsn, conn):
    email = f"ops-{secrets.token_hex(4)}@example.com"
    person = await make_person(conn, origin=suite.gateway, email=email.upper())

    out = await run("operator", "add", "--email", email, dsn=dsn)
    assert out.returncode == 0, out.stderr
    assert "is now a platform operator" in out.stdout
    assert await _added_by(conn, person.user_id) == "system:cli"
    out = await run("operator", "add", "--email", email, dsn=dsn)
    assert out.returncode == 0 and "already a platform operator" in out.stdout
    entries = await conn.fetch(
        "SELECT action, user_id AS actor FROM audit_logs WHERE tenant_id IS NULL AND target = $1"
        " AND starts_with(action, 'operator.')",
        f"user:{person.user_id}",
    )
    assert [(e["action"], e["actor"]) for e in entries] == [("operator.added", "system:cli")]

    listed = await run("operator", "list", dsn=dsn)
    assert listed.returncode == 0
    (line,) = [row for row in listed.stdout.splitlines() if str(person.user_id) in row]
    assert "system:cli" in line and person.subject in line and "https://idp.test.invalid" in line

    # the operator can now reach the admin API with their session
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        r = await client.get("/api/v1/admin/tenants", headers=person.cookie)
        assert r.status_code == 200, r.text

    out = await run("operator", "remove", "--issuer", "https://idp.test.invalid", "--subject",
                    person.subject, dsn=dsn)  # fmt: skip
    assert out.returncode == 0 and "is no longer a platform operator" in out.stdout, out.stderr
    assert await _added_by(conn, person.user_id) is None
    out = await run("operator", "remove", "--email", email, dsn=dsn)
    assert out.returncode == 0 and "was not a platform operator" in out.stdout
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        deadline = time.monotonic() + 5
        while (
            r := await client.get("/api/v1/admin/tenants", headers=person.cookie)
        ).status_code != 403:
            assert time.monotonic() < deadline, "still an operator 5 s after removal"
            await asyncio.sleep(0.05)
        assert r.json()["code"] == "operator_required"


async def test_an_email_finds_one_verified_user_or_none(suite, dsn, conn):
    shared = f"twice-{secrets.token_hex(4)}@example.com"
    first = await make_person(
        conn, origin=suite.gateway, email=shared, issuer="https://a.test.invalid"
    )
    second = await make_person(
        conn, origin=suite.gateway, email=shared, issuer="https://b.test.invalid"
    )
    out = await run("operator", "add", "--email", shared, dsn=dsn)
    assert out.returncode == 1
    assert "2 users" in out.stderr
    for person, issuer in ((first, "https://a.test.invalid"), (second, "https://b.test.invalid")):
        assert f"--issuer {issuer} --subject {person.subject}" in out.stderr
        assert await _added_by(conn, person.user_id) is None
    out = await run("operator", "add", "--issuer", "https://b.test.invalid", "--subject",
                    second.subject, dsn=dsn)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert await _added_by(conn, second.user_id) == "system:cli"
    assert await _added_by(conn, first.user_id) is None

    # an unverified email finds nobody; nor does one nobody signed in with
    unverified = f"unverified-{secrets.token_hex(4)}@example.com"
    person = await make_person(conn, origin=suite.gateway, email=unverified, email_verified=False)
    for email in (unverified, f"nobody-{secrets.token_hex(4)}@example.com"):
        out = await run("operator", "add", "--email", email, dsn=dsn)
        assert out.returncode == 1 and "sign in once" in out.stderr, out.stderr
    assert await _added_by(conn, person.user_id) is None
    out = await run(
        "operator", "add", "--issuer", "https://a.test.invalid", "--subject", "x", dsn=dsn
    )
    assert out.returncode == 1 and "sign in once" in out.stderr

    # one way of choosing the user, complete
    for args in ([], ["--email", shared, "--issuer", "https://a.test.invalid", "--subject", "s"],
                 ["--issuer", "https://a.test.invalid"], ["--subject", "s"]):  # fmt: skip
        out = await run("operator", "add", *args, dsn=dsn)
        assert out.returncode == 2 and "--email, or --issuer and --subject" in out.stderr


async def test_tenant_suspend_resume_and_list(suite, dsn, conn):
    tenant = await make_tenant(dsn)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=tenant.headers) as client:
        assert (await client.get("/api/v1/tenant")).status_code == 200

        out = await run("tenant", "suspend", tenant.slug, "--reason", "unpaid", dsn=dsn)
        assert out.returncode == 0 and f"suspended tenant {tenant.slug}" in out.stdout, out.stderr
        # gateways refuse within their cache time
        deadline = time.monotonic() + 5
        while (r := await client.get("/api/v1/tenant")).status_code != 403:
            assert time.monotonic() < deadline, "still served 5 s after the suspension"
            await asyncio.sleep(0.05)
        assert r.json()["code"] == "tenant_suspended"

        out = await run("tenants", "suspend", tenant.slug, "--reason", "again", dsn=dsn)
        assert out.returncode == 0 and "suspended already" in out.stdout
        listed = await run("tenant", "list", "--status", "suspended", dsn=dsn)
        (line,) = [row for row in listed.stdout.splitlines() if row.startswith(tenant.slug + " ")]
        assert "suspended" in line and "(unpaid)" in line
        listed = await run("tenant", "list", "--status", "active", dsn=dsn)
        assert tenant.slug not in listed.stdout and "demo" in listed.stdout

        out = await run("tenant", "resume", tenant.slug, dsn=dsn)
        assert out.returncode == 0 and f"resumed tenant {tenant.slug}" in out.stdout
        deadline = time.monotonic() + 5
        while (await client.get("/api/v1/tenant")).status_code != 200:
            assert time.monotonic() < deadline, "still refused 5 s after resuming"
            await asyncio.sleep(0.05)
        out = await run("tenant", "resume", tenant.slug, dsn=dsn)
        assert out.returncode == 0 and "was not suspended" in out.stdout
    listed = await run("tenant", "list", dsn=dsn)
    (line,) = [row for row in listed.stdout.splitlines() if row.startswith(tenant.slug + " ")]
    assert " active " in line

    entries = await conn.fetch(
        "SELECT action, user_id AS actor, payload FROM audit_logs WHERE tenant_id = $1"
        " AND action IN ('tenant.suspended', 'tenant.resumed') ORDER BY seq",
        tenant.tenant_id,
    )
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("tenant.suspended", "system:cli"), ("tenant.resumed", "system:cli")]  # fmt: skip
    assert entries[0]["payload"]["reason"] == "unpaid"

    missing = f"gone-{secrets.token_hex(3)}"
    for args in (["suspend", missing, "--reason", "x"], ["resume", missing]):
        out = await run("tenant", *args, dsn=dsn)
        assert out.returncode == 1 and "no tenant" in out.stderr
    out = await run("tenant", "suspend", tenant.slug, "--reason", "  ", dsn=dsn)
    assert out.returncode == 1 and "reason" in out.stderr
    out = await run("tenant", "list", "--status", "gone", dsn=dsn)
    assert out.returncode == 2


async def test_an_email_only_a_tenants_sso_verified_makes_no_operator(suite, dsn, conn):
    """A tenant's own SSO can assert any address: by email, only the platform's providers
    count, and the operator chooses such an identity by issuer and subject if they trust it."""
    email = f"boss-{secrets.token_hex(4)}@example.com"
    planted = await make_person(conn, origin=suite.gateway, email=email, provider="acme-sso",
                                issuer="https://acme.okta.invalid")  # fmt: skip
    out = await run("operator", "add", "--email", email, dsn=dsn)
    assert out.returncode != 0 and "do not vouch" in out.stderr, out.stdout + out.stderr
    assert f"--subject {planted.subject}" in out.stderr
    assert await _added_by(conn, planted.user_id) is None
    out = await run("operator", "add", "--issuer", "https://acme.okta.invalid",
                    "--subject", planted.subject, dsn=dsn)  # fmt: skip
    assert out.returncode == 0 and await _added_by(conn, planted.user_id) == "system:cli"
