"""``seedos members``, ``seedos invitations`` and ``seedos domains`` as an operator runs them:
a real process against the session's database, acting as ``system:cli``."""

from __future__ import annotations

import asyncio
import re
import secrets

import httpx
import pytest

from common import db
from gateway.invitations import service as invitations
from tests.people import make_person
from tests.seedos_cli.test_cli import seedos
from tests.support import make_tenant

COMMANDS = [
    ["members"], ["members", "list"], ["members", "set-role"], ["members", "remove"],
    ["invitations"], ["invitations", "create"], ["invitations", "list"],
    ["invitations", "revoke"], ["domains"], ["domains", "list"], ["domains", "add"],
    ["domains", "remove"],
]  # fmt: skip


async def run(*args: str, dsn: str, check: bool = True):
    return await asyncio.to_thread(seedos, *args, dsn=dsn, check=check)


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_every_command_has_help(args, dsn):
    out = seedos(*args, "--help", dsn=dsn)
    assert "Usage" in out.stdout and "--help" in out.stdout


async def test_an_operator_manages_members_invitations_and_domains(suite, dsn):
    t = await make_tenant(dsn)
    conn = await db.connect(dsn)
    try:
        admin = await make_person(conn, origin=suite.gateway, tenant_id=t.tenant_id,
                                  role="admin", email="root@corp.example")  # fmt: skip
        member = await make_person(conn, origin=suite.gateway, tenant_id=t.tenant_id,
                                   role="viewer")  # fmt: skip
    finally:
        await conn.close()
    tenant = ("--tenant", t.slug)

    listed = (await run("members", "list", *tenant, dsn=dsn)).stdout
    assert re.search(rf"{admin.user_id}\s+admin\s+.*root@corp\.example", listed), listed
    assert re.search(rf"{member.user_id}\s+viewer", listed)
    out = await run(
        "members", "set-role", str(member.user_id), *tenant, "--role", "publisher", dsn=dsn
    )  # an operator grants any role
    assert f"{member.user_id} is publisher in {t.slug}" in out.stdout
    out = await run("members", "remove", str(admin.user_id), *tenant, dsn=dsn, check=False)
    assert out.returncode == 1 and "last admin" in out.stderr
    await run("members", "remove", str(member.user_id), *tenant, dsn=dsn)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        r = await client.get("/api/v1/members", headers=t.headers)
        assert [m["user_id"] for m in r.json()["items"]] == [str(admin.user_id)]
        # their session has ended: refused within the gateway's cache time (first use here)
        r = await client.get("/api/v1/members", headers=member.cookie)
        assert r.status_code == 401

    out = await run("invitations", "create", *tenant, "--email", "New@Corp.example", "--role",
                    "editor", dsn=dsn)  # fmt: skip
    link = re.search(r"link:\s+(\S+)", out.stdout)[1]
    invitation_id = re.search(r"id:\s+(\S+)", out.stdout)[1]
    assert "email:   new@corp.example" in out.stdout and "emailed: no" in out.stdout
    token = link.rpartition("/")[2]
    conn = await db.connect(dsn)
    try:
        assert await invitations.invitation_for(conn, token) == (t.slug, "new@corp.example")
    finally:
        await conn.close()
    listed = (await run("invitations", "list", *tenant, dsn=dsn)).stdout
    assert re.search(rf"{invitation_id}\s+pending\s+editor", listed) and token not in listed
    await run("invitations", "revoke", invitation_id, *tenant, dsn=dsn)
    listed = (await run("invitations", "list", *tenant, "--status", "revoked", dsn=dsn)).stdout
    assert re.search(rf"{invitation_id}\s+revoked", listed)
    out = await run("invitations", "create", *tenant, "--email", "nope", dsn=dsn, check=False)
    assert out.returncode == 1 and "not an email address" in out.stderr

    domain = f"Corp-{secrets.token_hex(3)}.Example"
    out = await run("domains", "add", domain, *tenant, dsn=dsn)
    assert f"added {domain.lower()} to {t.slug}" in out.stdout
    out = await run("domains", "add", "gmail.com", *tenant, dsn=dsn, check=False)
    assert out.returncode == 1 and "public email" in out.stderr
    assert domain.lower() in (await run("domains", "list", *tenant, dsn=dsn)).stdout
    await run("domains", "remove", domain, *tenant, dsn=dsn)
    assert domain.lower() not in (await run("domains", "list", *tenant, dsn=dsn)).stdout
    out = await run("domains", "list", "--tenant", "no-such-tenant", dsn=dsn, check=False)
    assert out.returncode == 1 and "no tenant" in out.stderr

    conn = await db.connect(dsn)
    try:
        actors = await conn.fetch(
            "SELECT action FROM audit_logs WHERE tenant_id = $1 AND user_id = 'system:cli'"
            " AND action <> 'tenant.created' ORDER BY seq",
            t.tenant_id,
        )
    finally:
        await conn.close()
    assert [a["action"] for a in actors] == [
        "member.role_changed", "member.removed", "session.ended", "invitation.created",
        "invitation.revoked", "domain.added", "domain.removed",
    ]  # fmt: skip
