"""``seedos users show`` and ``seedos users link`` as an operator runs them: a real process
against the session's database, and the running gateway for what the linked people see.

Two providers asserting one verified email are two users until an operator links them; a link
never grants anything either user lacked, and a refused link changes nothing."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from common.roles import Role
from gateway.api_keys import service as api_keys
from gateway.invitations import service as invitations
from tests.people import Person, make_person
from tests.seedos_cli.test_cli import seedos
from tests.support import make_tenant

A, B = "https://a.test.invalid", "https://b.test.invalid"


async def run(*args: str, dsn: str):
    return await asyncio.to_thread(seedos, *args, dsn=dsn, check=False)


def _identity(side: str, issuer: str, person: Person) -> list[str]:
    return [f"--{side}-issuer", issuer, f"--{side}-subject", person.subject]


@pytest.mark.parametrize("args", [["users"], ["users", "show"], ["users", "link"]], ids=" ".join)
def test_help(args, dsn):
    out = seedos(*args, "--help", dsn=dsn)
    assert "Usage" in out.stdout


async def _status(client: httpx.AsyncClient, person: Person) -> httpx.Response:
    return await client.get("/api/v1/me", headers=person.cookie)


async def test_two_users_with_one_email_stay_two_until_linked(suite, dsn, conn):
    shared = f"same-{secrets.token_hex(4)}@example.com"
    both, moved, other = [await make_tenant(dsn) for _ in range(3)]
    keep = await make_person(conn, origin=suite.gateway, email=shared, issuer=A,
                             tenant_id=both.tenant_id, role="viewer",
                             memberships={other.tenant_id: "admin"})  # fmt: skip
    merge = await make_person(conn, origin=suite.gateway, email=shared.upper(), issuer=B,
                              tenant_id=both.tenant_id, role="editor",
                              memberships={moved.tenant_id: "admin"})  # fmt: skip
    async with conn.transaction():
        # merge made an editor key where keep is a viewer, and invited someone elsewhere
        key = await api_keys.create(conn, tenant_id=both.tenant_id, name="merge's",
                                    role=Role.editor, created_by=f"user:{merge.user_id}")  # fmt: skip
        invited = await invitations.create(
            conn, tenant_id=moved.tenant_id, email="guest@example.com", role=Role.viewer,
            invited_by=f"user:{merge.user_id}", inviter_role=None, valid_days=1, public_url="",
        )  # fmt: skip

    # one email, two users: each signed in as themself
    out = await run("users", "show", "--email", shared, dsn=dsn)
    assert out.returncode == 0, out.stderr
    for person, issuer in ((keep, A), (merge, B)):
        assert f"user {person.user_id}" in out.stdout
        assert f"identity  {issuer}  {person.subject}" in out.stdout
    assert f"member    {both.slug}  viewer" in out.stdout
    assert f"member    {both.slug}  editor" in out.stdout
    assert "2 users have this email" in out.stdout
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        for person in (keep, merge):
            r = await _status(client, person)
            assert r.status_code == 200 and r.json()["user"]["id"] == str(person.user_id)

    out = await run("users", "link", *_identity("keep", A, keep), *_identity("merge", B, merge),
                    dsn=dsn)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"linked {merge.user_id} ({shared.upper()}) into {keep.user_id}" in out.stdout
    assert f"identity moved: {B}  {merge.subject}  (provider test)" in out.stdout
    assert f"membership moved: {moved.slug}  admin" in out.stdout
    assert f"conflict: {both.slug}: kept viewer, dropped editor" in out.stdout
    assert "sessions ended: 1; API keys revoked: 1" in out.stdout
    assert f"now naming {keep.user_id} as who did it: api_keys 1, invitations 1" in out.stdout

    # one user with both identities; the merged row is gone
    assert await conn.fetchval("SELECT count(*) FROM users WHERE id = $1", merge.user_id) == 0
    identities = await conn.fetch(
        "SELECT issuer, user_id FROM user_identities WHERE subject = ANY($1::text[])",
        [keep.subject, merge.subject],
    )
    assert {(r["issuer"], r["user_id"]) for r in identities} == {
        (A, keep.user_id), (B, keep.user_id)}  # fmt: skip
    roles = await conn.fetch(
        "SELECT tenant_id, role, created_by FROM memberships WHERE user_id = $1", keep.user_id
    )
    assert {r["tenant_id"]: r["role"] for r in roles} == {
        both.tenant_id: "viewer", moved.tenant_id: "admin", other.tenant_id: "admin"}  # fmt: skip
    # the key granting more than keep's role is revoked; what merge did is keep's now
    key_row = await conn.fetchrow(
        "SELECT created_by, revoked_at FROM api_keys WHERE id = $1", key["id"]
    )
    assert key_row["created_by"] == f"user:{keep.user_id}" and key_row["revoked_at"] is not None
    invited_by = await conn.fetchval(
        "SELECT invited_by FROM invitations WHERE id = $1", invited.invitation["id"]
    )
    assert invited_by == f"user:{keep.user_id}"
    session = await conn.fetchrow(
        "SELECT user_id, end_reason FROM sessions WHERE id = $1", merge.session_id
    )
    assert dict(session) == {"user_id": keep.user_id, "end_reason": "user_linked"}

    # merge's session ends for the gateways within their cache time; keep's goes on
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        deadline = time.monotonic() + 5
        while (r := await _status(client, merge)).status_code != 401:
            assert time.monotonic() < deadline, "merged user's session alive 5 s after the link"
            await asyncio.sleep(0.05)
        assert r.json()["code"] == "session_expired"
        r = await _status(client, keep)
        assert r.status_code == 200 and r.json()["user"]["id"] == str(keep.user_id)

    # audited in the system's chain and in each tenant merge belonged to
    entries = await conn.fetch(
        "SELECT tenant_id, user_id AS actor, payload FROM audit_logs"
        " WHERE action = 'user.linked' AND target = $1",
        f"user:{keep.user_id}",
    )
    by_chain = {e["tenant_id"]: e for e in entries}
    assert set(by_chain) == {None, both.tenant_id, moved.tenant_id}
    assert all(e["actor"] == "system:cli" for e in entries)
    system = by_chain[None]["payload"]
    assert system["merge"] == str(merge.user_id)
    assert system["identities"] == [{"issuer": B, "subject": merge.subject}]
    assert system["conflicts"] == [both.slug]
    assert by_chain[both.tenant_id]["payload"]["outcome"] == "kept"
    assert by_chain[moved.tenant_id]["payload"]["role"] == "admin"
    assert (await run("audit", "verify", "--tenant", both.slug, dsn=dsn)).returncode == 0

    out = await run("users", "show", "--email", shared, dsn=dsn)
    assert out.stdout.count("\nuser ") + out.stdout.startswith("user ") == 1
    assert f"identity  {A}  {keep.subject}" in out.stdout
    assert f"identity  {B}  {merge.subject}" in out.stdout
    assert "users have this email" not in out.stdout


async def _state(conn: asyncpg.Connection, *people: Person) -> dict[str, Any]:
    """What a refused link must leave as it was."""
    ids = [p.user_id for p in people]
    queries = {
        "users": "SELECT id FROM users WHERE id = ANY($1) ORDER BY id",
        "identities": "SELECT issuer, subject, user_id FROM user_identities"
                      " WHERE user_id = ANY($1) ORDER BY issuer, subject",
        "memberships": "SELECT tenant_id, user_id, role FROM memberships WHERE user_id = ANY($1)"
                       " ORDER BY tenant_id, user_id",
        "operators": "SELECT user_id FROM platform_operators WHERE user_id = ANY($1)"
                     " ORDER BY user_id",
        "live": "SELECT id FROM sessions WHERE user_id = ANY($1) AND ended_at IS NULL"
                " ORDER BY id",
        "audited": "SELECT action, target FROM audit_logs"
                   " WHERE target IN (SELECT 'user:' || u FROM unnest($1::uuid[]) u) ORDER BY id",
    }  # fmt: skip
    return {name: [tuple(r) for r in await conn.fetch(sql, ids)] for name, sql in queries.items()}


async def test_refused_links_change_nothing(suite, dsn, conn):
    shared = f"refused-{secrets.token_hex(4)}@example.com"
    t = await make_tenant(dsn)
    operator = await make_person(conn, origin=suite.gateway, email=shared, issuer=A,
                                 operator=True)  # fmt: skip
    person = await make_person(conn, origin=suite.gateway, email=shared, issuer=B,
                               tenant_id=t.tenant_id, role="admin")  # fmt: skip
    viewer = await make_person(conn, origin=suite.gateway, issuer=A, tenant_id=t.tenant_id,
                               role="viewer")  # fmt: skip
    before = await _state(conn, operator, person, viewer)

    refusals = [
        # a user linked to themself, by id or by two ways of naming them
        (["--keep", str(person.user_id), "--merge", str(person.user_id)], "same user"),
        ([*_identity("keep", B, person), "--merge", str(person.user_id)], "same user"),
        # unknown users
        (["--keep", str(uuid.uuid4()), "--merge", str(person.user_id)], "no user"),
        (["--keep", str(person.user_id), "--merge", str(uuid.uuid4())], "no user"),
        ([*_identity("keep", A, person), "--merge", str(viewer.user_id)], "sign in once"),
        # the operator role moves by `seedos operator add` only
        (["--keep", str(person.user_id), "--merge", str(operator.user_id)],
         "is a platform operator"),
        # the tenant's only admin merged into its viewer would leave it without one
        (["--keep", str(viewer.user_id), "--merge", str(person.user_id)], "last admin"),
    ]  # fmt: skip
    for args, message in refusals:
        out = await run("users", "link", *args, dsn=dsn)
        assert out.returncode == 1 and message in out.stderr, (args, out.stdout, out.stderr)
        assert await _state(conn, operator, person, viewer) == before, args

    # each side named one way, completely
    for args in ([], ["--keep", str(person.user_id)],
                 ["--keep", str(person.user_id), *_identity("keep", B, person),
                  "--merge", str(viewer.user_id)],
                 ["--keep", str(person.user_id), "--merge-issuer", A]):  # fmt: skip
        out = await run("users", "link", *args, dsn=dsn)
        assert out.returncode == 2 and "give --" in out.stderr, (args, out.stderr)

    # an unverified email finds nobody to show, let alone link
    unverified = f"unverified-{secrets.token_hex(4)}@example.com"
    await make_person(conn, origin=suite.gateway, email=unverified, email_verified=False)
    out = await run("users", "show", "--email", unverified, dsn=dsn)
    assert out.returncode == 1 and "verified email" in out.stderr
    out = await run("users", "show", "--issuer", A, "--subject", "nobody", dsn=dsn)
    assert out.returncode == 1 and "nobody has signed in" in out.stderr
    assert await _state(conn, operator, person, viewer) == before


async def test_an_operator_merges_into_an_operator(suite, dsn, conn):
    first = await make_person(conn, origin=suite.gateway, issuer=A, operator=True)
    second = await make_person(conn, origin=suite.gateway, issuer=B, operator=True)
    out = await run("users", "link", "--keep", str(first.user_id), "--merge",
                    str(second.user_id), dsn=dsn)  # fmt: skip
    assert out.returncode == 0, out.stderr
    operators = await conn.fetch(
        "SELECT user_id FROM platform_operators WHERE user_id = ANY($1)",
        [first.user_id, second.user_id],
    )
    assert [r["user_id"] for r in operators] == [first.user_id]
    out = await run("users", "show", "--issuer", B, "--subject", second.subject, dsn=dsn)
    assert out.returncode == 0 and f"user {first.user_id}" in out.stdout
    assert "operator: yes" in out.stdout
