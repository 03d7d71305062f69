"""/api/v1/members through the real gateway: everyone in a tenant lists its members, admins
change roles and remove members (their sessions in the tenant end), a member may leave, and a
tenant always keeps an admin, also when two admins demote each other at once."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from common import db
from common.errors import SeedosError
from common.roles import Role
from gateway.api_keys import service as api_keys
from gateway.members import service as members
from gateway.sessions import cookies
from gateway.sessions import service as sessions
from tests.people import TIMEOUTS, Person, audit_of, person
from tests.support import add_key, make_tenant, until_blocked

PROBLEM = "application/problem+json"


async def all_members(client: httpx.AsyncClient, headers: dict, **params) -> list[dict]:
    items, cursor = [], None
    while True:
        query = params | ({"cursor": cursor} if cursor else {})
        r = await client.get("/api/v1/members", params=query, headers=headers)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        if (cursor := r.json()["next_cursor"]) is None:
            return items


async def test_everyone_in_the_tenant_lists_its_members_page_by_page(suite, dsn):
    t = await make_tenant(dsn)
    admin = await person(suite.gateway, dsn, t, "admin", email="Boss@Example.com")
    editor = await person(suite.gateway, dsn, t, "editor")
    viewer = await person(suite.gateway, dsn, t, "viewer", email_verified=False)
    outsider = await person(suite.gateway, dsn, await make_tenant(dsn), "admin")
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        r = await client.get("/api/v1/members", headers=viewer.cookie)
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert [m["user_id"] for m in items] == [
            str(p.user_id) for p in (admin, editor, viewer)
        ]  # in the order they joined
        first = items[0]
        assert first["email"] == "Boss@Example.com" and first["email_verified"] is True
        assert first["role"] == "admin" and first["name"] == admin.subject
        assert first["added_by"] == "test" and first["last_sign_in_at"] is not None
        assert items[2]["email_verified"] is False
        assert str(outsider.user_id) not in r.text

        paged = await all_members(client, viewer.cookie, limit=1)
        assert paged == items
        key = await add_key(dsn, t, Role.viewer)  # keys read them too
        assert await all_members(client, key.headers, limit=2) == items

        r = await client.get("/api/v1/members", params={"cursor": "nope"}, headers=t.headers)
        assert r.status_code == 422 and r.json()["code"] == "invalid_cursor"
        r = await client.get("/api/v1/members")
        assert r.status_code == 401 and r.headers["content-type"] == PROBLEM


async def test_admins_change_roles_and_the_member_acts_with_the_new_one(suite, dsn):
    t = await make_tenant(dsn)
    admin = await person(suite.gateway, dsn, t, "admin")
    member = await person(suite.gateway, dsn, t, "viewer")
    url = f"/api/v1/members/{member.user_id}"
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        assert (await client.get("/api/v1/me", headers=member.cookie)).json()["role"] == "viewer"
        r = await client.patch(url, json={"role": "editor"}, headers=admin.headers)
        assert r.status_code == 200, r.text
        assert r.json()["role"] == "editor" and r.json()["user_id"] == str(member.user_id)
        # the next request acts as an editor (and the session id rotates for the new role)
        r = await client.get("/api/v1/me", headers=member.cookie)
        assert r.status_code == 200 and r.json()["role"] == "editor"
        assert f"{cookies.SESSION}=" in r.headers.get("set-cookie", "")

        # the same role again changes nothing and records nothing
        r = await client.patch(url, json={"role": "editor"}, headers=admin.headers)
        assert r.status_code == 200 and r.json()["role"] == "editor"
        # an admin grants no role with a permission they lack; an operator (CLI) may
        r = await client.patch(url, json={"role": "publisher"}, headers=admin.headers)
        assert r.status_code == 403 and r.json()["code"] == "role_not_grantable"
        # readers and writers change nothing
        editor_key = await add_key(dsn, t, Role.editor)
        r = await client.patch(url, json={"role": "admin"}, headers=editor_key.headers)
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
        r = await client.patch(url, json={"role": "admin"}, headers=member.headers)
        assert r.status_code == 403
        # an admin key may, as a person may
        r = await client.patch(url, json={"role": "admin"}, headers=t.headers)
        assert r.status_code == 200 and r.json()["role"] == "admin"

        for body in ({"role": "root"}, {}, {"role": "viewer", "extra": 1}):
            r = await client.patch(url, json=body, headers=admin.headers)
            assert r.status_code == 422 and r.json()["code"] == "validation_failed"
        r = await client.patch(f"/api/v1/members/{uuid.uuid4()}", json={"role": "viewer"},
                               headers=admin.headers)  # fmt: skip
        assert r.status_code == 404 and r.json()["code"] == "member_not_found"
        other = await person(suite.gateway, dsn, await make_tenant(dsn), "viewer")
        r = await client.patch(f"/api/v1/members/{other.user_id}", json={"role": "editor"},
                               headers=admin.headers)  # fmt: skip
        assert r.status_code == 404  # another tenant's member is not this tenant's

    changes = await audit_of(dsn, t.tenant_id, "member.")
    assert [(c["action"], c["actor"], c["target"]) for c in changes] == [
        ("member.role_changed", f"user:{admin.user_id}", f"user:{member.user_id}"),
        ("member.role_changed", f"apikey:{t.key_id}", f"user:{member.user_id}"),
    ]
    assert changes[0]["payload"] == {
        "user_id": str(member.user_id), "from": "viewer", "to": "editor"}  # fmt: skip


async def test_the_last_admin_is_neither_demoted_nor_removed(suite, dsn):
    t = await make_tenant(dsn)
    admin = await person(suite.gateway, dsn, t, "admin")
    own = f"/api/v1/members/{admin.user_id}"
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        r = await client.patch(own, json={"role": "editor"}, headers=admin.headers)
        assert r.status_code == 409 and r.json()["code"] == "last_admin", r.text
        r = await client.delete(own, headers=admin.headers)
        assert r.status_code == 409 and r.json()["code"] == "last_admin"
        r = await client.delete(own, headers=t.headers)
        assert r.status_code == 409 and r.json()["code"] == "last_admin"

        second = await person(suite.gateway, dsn, t, "admin")
        r = await client.patch(own, json={"role": "editor"}, headers=admin.headers)
        assert r.status_code == 200 and r.json()["role"] == "editor"
        r = await client.delete(f"/api/v1/members/{second.user_id}", headers=second.headers)
        assert r.status_code == 409 and r.json()["code"] == "last_admin"
        roles = {m["user_id"]: m["role"] for m in await all_members(client, t.headers)}
    assert roles == {str(admin.user_id): "editor", str(second.user_id): "admin"}


@pytest.mark.parametrize("second", ["demote", "remove"])
async def test_two_admins_demoting_each_other_at_once_leave_one_admin(suite, dsn, second):
    t = await make_tenant(dsn)
    a = await person(suite.gateway, dsn, t, "admin")
    b = await person(suite.gateway, dsn, t, "admin")
    first_conn, second_conn, watcher = [await db.connect(dsn) for _ in range(3)]
    try:
        async with first_conn.transaction():
            await members.change_role(
                first_conn, tenant_id=t.tenant_id, user_id=a.user_id, role=Role.viewer,
                actor=f"user:{b.user_id}", granter_role="admin",
            )  # fmt: skip

            async def other() -> None:
                async with second_conn.transaction():
                    if second == "demote":
                        await members.change_role(
                            second_conn, tenant_id=t.tenant_id, user_id=b.user_id,
                            role=Role.editor, actor=f"user:{a.user_id}", granter_role="admin",
                        )  # fmt: skip
                    else:
                        await members.remove(
                            second_conn, tenant_id=t.tenant_id, user_id=b.user_id,
                            actor=f"user:{a.user_id}", actor_user_id=a.user_id,
                            actor_role="admin",
                        )  # fmt: skip

            racing = asyncio.create_task(other())
            await until_blocked(
                watcher,
                second_conn.get_server_pid(),
                failure="the second demotion never waited for the first",
            )
        with pytest.raises(members.LastAdmin):
            await racing
        rows = await watcher.fetch(
            "SELECT user_id, role FROM memberships WHERE tenant_id = $1", t.tenant_id
        )
    finally:
        for conn in (first_conn, second_conn, watcher):
            await conn.close()
    assert {r["user_id"]: r["role"] for r in rows} == {a.user_id: "viewer", b.user_id: "admin"}


async def _second_session(dsn: str, who: Person, tenant_id: uuid.UUID) -> dict[str, str]:
    """Another live session of the same person, in another tenant: its cookie headers."""
    conn = await db.connect(dsn)
    try:
        issued = await sessions.start(
            conn, user_id=who.user_id, tenant_id=tenant_id, role="viewer", provider="test",
            issuer=None, timeouts=TIMEOUTS,
        )  # fmt: skip
    finally:
        await conn.close()
    return {"cookie": f"{cookies.SESSION}={issued.secret}"}


async def test_removing_a_member_ends_their_sessions_in_the_tenant(suite, dsn):
    t, elsewhere = await make_tenant(dsn), await make_tenant(dsn)
    admin = await person(suite.gateway, dsn, t, "admin")
    member = await person(
        suite.gateway, dsn, t, "editor", memberships={elsewhere.tenant_id: "viewer"}
    )
    other_session = await _second_session(dsn, member, elsewhere.tenant_id)
    url = f"/api/v1/members/{member.user_id}"
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        assert (await client.get("/api/v1/members", headers=member.cookie)).status_code == 200
        viewer = await person(suite.gateway, dsn, t, "viewer")
        r = await client.delete(url, headers=viewer.headers)
        assert r.status_code == 403 and r.json()["code"] == "forbidden"

        r = await client.delete(url, headers=admin.headers)
        assert r.status_code == 200, r.text
        assert r.json()["role"] == "editor" and r.json()["user_id"] == str(member.user_id)
        # at once on this gateway: the session in the tenant has ended
        r = await client.get("/api/v1/members", headers=member.cookie)
        assert r.status_code == 401 and r.json()["code"] == "session_expired"
        # their session in another tenant goes on
        r = await client.get("/api/v1/members", headers=other_session)
        assert r.status_code == 200, r.text
        assert str(member.user_id) not in (await client.get(
            "/api/v1/members", headers=admin.cookie)).text  # fmt: skip
        r = await client.delete(url, headers=admin.headers)
        assert r.status_code == 404 and r.json()["code"] == "member_not_found"

    entries = await audit_of(dsn, t.tenant_id, "")
    removed = [e for e in entries if e["action"] == "member.removed"]
    assert [(e["actor"], e["target"]) for e in removed] == [
        (f"user:{admin.user_id}", f"user:{member.user_id}")]  # fmt: skip
    assert removed[0]["payload"] == {"user_id": str(member.user_id), "role": "editor",
                                     "left": False}  # fmt: skip
    ended = [e for e in entries if e["action"] == "session.ended"]
    assert [(e["target"], e["payload"]) for e in ended] == [
        (f"session:{member.session_id}", {"reason": "member_removed"})]  # fmt: skip


async def test_a_member_may_leave(suite, dsn):
    t = await make_tenant(dsn)
    await person(suite.gateway, dsn, t, "admin")
    viewer = await person(suite.gateway, dsn, t, "viewer")
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        r = await client.delete(f"/api/v1/members/{viewer.user_id}", headers=viewer.headers)
        assert r.status_code == 200, r.text
        # leaving ends the session in the tenant, this one too
        r = await client.get("/api/v1/members", headers=viewer.cookie)
        assert r.status_code == 401
    left = await audit_of(dsn, t.tenant_id, "member.removed")
    assert left[0]["actor"] == f"user:{viewer.user_id}" and left[0]["payload"]["left"] is True


async def make_key(client: httpx.AsyncClient, headers: dict, role: str) -> dict:
    r = await client.post("/api/v1/api-keys", json={"name": role, "role": role}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def bearer(key: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {key['key']}"}


async def status_with(client: httpx.AsyncClient, key: dict) -> int:
    return (await client.get("/api/v1/members", headers=bearer(key))).status_code


@pytest.mark.parametrize("by", ["another_admin", "themself"])
async def test_a_removed_members_api_keys_are_revoked_at_once(suite, dsn, by):
    t = await make_tenant(dsn)
    admin = await person(suite.gateway, dsn, t, "admin")
    leaver = await person(suite.gateway, dsn, t, "admin")
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        own = await make_key(client, leaver.headers, "admin")
        viewer_key = await make_key(client, leaver.headers, "viewer")
        made_by_key = await make_key(client, bearer(own), "admin")  # a key their key made
        others = await make_key(client, admin.headers, "admin")
        assert await status_with(client, own) == 200  # cached as valid on this gateway

        remover = admin if by == "another_admin" else leaver
        r = await client.delete(f"/api/v1/members/{leaver.user_id}", headers=remover.headers)
        assert r.status_code == 200, r.text
        assert r.json()["revoked_api_keys"] == 3
        # refused at once, and the key can no longer invite anyone back in
        for key in (own, viewer_key, made_by_key):
            r = await client.get("/api/v1/members", headers=bearer(key))
            assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
        r = await client.post("/api/v1/invitations", json={"email": "back@example.com"},
                              headers=bearer(own))  # fmt: skip
        assert r.status_code == 401
        # keys made by others stay
        assert await status_with(client, others) == 200
        assert (await client.get("/api/v1/members", headers=t.headers)).status_code == 200

    revoked = await audit_of(dsn, t.tenant_id, "api_key.revoked")
    assert sorted((e["target"], e["actor"], e["payload"]["reason"]) for e in revoked) == sorted(
        (f"api_key:{k['id']}", f"user:{remover.user_id}", "member_removed")
        for k in (own, viewer_key, made_by_key)
    )


async def test_a_demoted_members_keys_beyond_their_new_role_are_revoked(suite, dsn):
    t = await make_tenant(dsn)
    admin = await person(suite.gateway, dsn, t, "admin")
    demoted = await person(suite.gateway, dsn, t, "admin")
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        admin_key = await make_key(client, demoted.headers, "admin")
        editor_key = await make_key(client, demoted.headers, "editor")
        viewer_key = await make_key(client, demoted.headers, "viewer")
        others = await make_key(client, admin.headers, "admin")
        assert await status_with(client, admin_key) == 200

        r = await client.patch(f"/api/v1/members/{demoted.user_id}", json={"role": "viewer"},
                               headers=admin.headers)  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["role"] == "viewer" and r.json()["revoked_api_keys"] == 2
        assert await status_with(client, admin_key) == 401
        assert await status_with(client, editor_key) == 401
        assert await status_with(client, viewer_key) == 200  # within the new role: kept
        assert await status_with(client, others) == 200

        # promoted again: nothing comes back, and nothing else is revoked
        r = await client.patch(f"/api/v1/members/{demoted.user_id}", json={"role": "admin"},
                               headers=admin.headers)  # fmt: skip
        assert r.status_code == 200 and r.json()["revoked_api_keys"] == 0
        assert await status_with(client, admin_key) == 401
        assert await status_with(client, viewer_key) == 200

    revoked = await audit_of(dsn, t.tenant_id, "api_key.revoked")
    assert sorted((e["target"], e["payload"]["reason"]) for e in revoked) == sorted(
        (f"api_key:{k['id']}", "member_role_changed") for k in (admin_key, editor_key)
    )


async def test_a_key_is_minted_only_with_the_role_its_creator_has_now(suite, dsn):
    """What another gateway's cache may still let through for a few seconds after a removal,
    a demotion or a revocation: the creator's role is read again when the key is made."""
    t = await make_tenant(dsn)
    await person(suite.gateway, dsn, t, "admin")
    demoted = await person(suite.gateway, dsn, t, "admin")
    removed = await person(suite.gateway, dsn, t, "admin")
    conn = await db.connect(dsn)
    try:
        await members.change_role(conn, tenant_id=t.tenant_id, user_id=demoted.user_id,
                                  role=Role.editor, actor="test", granter_role=None)  # fmt: skip
        await members.remove(conn, tenant_id=t.tenant_id, user_id=removed.user_id,
                             actor="test", actor_role=None)  # fmt: skip
        revoked = await api_keys.create(conn, tenant_id=t.tenant_id, name="k", role=Role.admin,
                                        created_by="test")  # fmt: skip
        await api_keys.revoke(conn, revoked["id"], tenant_id=t.tenant_id, actor="test")
        cases = [
            (f"user:{demoted.user_id}", "forbidden"),  # an editor manages no keys
            (f"user:{removed.user_id}", "session_expired"),
            (f"apikey:{revoked['id']}", "invalid_credentials"),
        ]
        for created_by, code in cases:
            with pytest.raises(SeedosError) as refused:
                await api_keys.create(conn, tenant_id=t.tenant_id, name="late", role=Role.admin,
                                      created_by=created_by, creator_role="admin")  # fmt: skip
            assert refused.value.code == code, created_by
        # one who is still an admin mints
        still = await person(suite.gateway, dsn, t, "admin")
        kept = await api_keys.create(
            conn, tenant_id=t.tenant_id, name="ok", role=Role.editor,
            created_by=f"user:{still.user_id}", creator_role="admin",
        )  # fmt: skip
        assert kept["role"] == "editor"
    finally:
        await conn.close()


async def test_a_removed_or_demoted_members_invitations_are_revoked(suite, dsn):
    """Else an admin about to be removed invites an address of theirs as admin, and is back
    through it; the same for the invitations their keys made."""
    t = await make_tenant(dsn)
    admin = await person(suite.gateway, dsn, t, "admin")
    leaver = await person(suite.gateway, dsn, t, "admin")
    demoted = await person(suite.gateway, dsn, t, "admin")
    async with httpx.AsyncClient(base_url=suite.gateway) as client:

        async def invite(headers: dict, email: str, role: str) -> str:
            r = await client.post("/api/v1/invitations", json={"email": email, "role": role},
                                  headers=headers)  # fmt: skip
            assert r.status_code == 201, r.text
            return r.json()["id"]

        key = await make_key(client, leaver.headers, "admin")
        mine = await invite(leaver.headers, "alt@example.com", "admin")
        by_key = await invite(bearer(key), "alt2@example.com", "editor")
        high = await invite(demoted.headers, "friend@example.com", "admin")
        low = await invite(demoted.headers, "viewer@example.com", "viewer")
        others = await invite(admin.headers, "colleague@example.com", "admin")

        r = await client.delete(f"/api/v1/members/{leaver.user_id}", headers=admin.headers)
        assert r.status_code == 200 and r.json()["revoked_invitations"] == 2, r.text
        r = await client.patch(f"/api/v1/members/{demoted.user_id}", json={"role": "editor"},
                               headers=admin.headers)  # fmt: skip
        assert r.status_code == 200 and r.json()["revoked_invitations"] == 1, r.text
        listed = (await client.get("/api/v1/invitations", headers=admin.headers)).json()
    status = {i["id"]: i["status"] for i in listed["items"]}
    assert [status[i] for i in (mine, by_key, high)] == ["revoked"] * 3
    assert status[low] == "pending" and status[others] == "pending"
    reasons = {e["target"]: e["payload"].get("reason")
               for e in await audit_of(dsn, t.tenant_id, "invitation.revoked")}  # fmt: skip
    assert reasons == {f"invitation:{mine}": "member_removed",
                       f"invitation:{by_key}": "member_removed",
                       f"invitation:{high}": "member_role_changed"}  # fmt: skip


async def test_revoking_a_key_revokes_the_keys_it_made(suite, dsn):
    t = await make_tenant(dsn)
    admin = await person(suite.gateway, dsn, t, "admin")
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        parent = await make_key(client, admin.headers, "admin")
        child = await make_key(client, bearer(parent), "admin")
        grandchild = await make_key(client, bearer(child), "viewer")
        sibling = await make_key(client, admin.headers, "admin")
        r = await client.delete(f"/api/v1/api-keys/{parent['id']}", headers=admin.headers)
        assert r.status_code == 200, r.text
        for key in (parent, child, grandchild):
            assert await status_with(client, key) == 401
        assert await status_with(client, sibling) == 200
    revoked = await audit_of(dsn, t.tenant_id, "api_key.revoked")
    assert sorted((e["target"], e["payload"].get("reason")) for e in revoked) == sorted([
        (f"api_key:{parent['id']}", None),
        (f"api_key:{child['id']}", "parent_revoked"),
        (f"api_key:{grandchild['id']}", "parent_revoked"),
    ])  # fmt: skip
