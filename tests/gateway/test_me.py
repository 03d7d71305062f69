"""``/api/v1/me`` and the session routes with sessions made in the database: switching tenant
while a role change is pending sets one cookie (the last id), and logging out with an id that
was just rotated ends the session."""

from __future__ import annotations

import uuid

import httpx

from gateway.sessions import cookies, tokens
from tests.people import make_person
from tests.support import make_tenant, set_cookie, set_cookies


async def test_a_tenant_switch_during_a_role_change_sets_one_cookie(suite, dsn, conn) -> None:
    a, b = await make_tenant(dsn), await make_tenant(dsn)
    person = await make_person(
        conn, origin=suite.gateway, tenant_id=a.tenant_id, role="admin",
        memberships={b.tenant_id: "viewer"},
    )  # fmt: skip
    # an admin of A demotes them: their next request rotates the session id
    await conn.execute(
        "UPDATE memberships SET role = 'editor' WHERE tenant_id = $1 AND user_id = $2",
        a.tenant_id, person.user_id,
    )  # fmt: skip
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        r = await client.post("/api/v1/me/tenant", json={"tenant": b.slug}, headers=person.headers)
        assert r.status_code == 200, r.text
        sent = set_cookies(r, cookies.SESSION)
        assert len(sent) == 1, r.headers.get_list("set-cookie")
        new = sent[0]
        assert r.json()["csrf_token"] == tokens.derive(new, "csrf")
        assert r.json()["tenant"]["slug"] == b.slug and r.json()["role"] == "viewer"
        # once the grace of the old ids is over, the one the browser kept still works
        await conn.execute(
            "UPDATE sessions SET rotated_at = now() - interval '1 minute' WHERE id = $1",
            person.session_id,
        )
        client.cookies.clear()
        me = await client.get("/api/v1/me", headers={"cookie": f"{cookies.SESSION}={new}"})
        assert me.status_code == 200 and me.json()["tenant"]["slug"] == b.slug, me.text


async def test_logging_out_with_a_just_rotated_id_ends_the_session(suite, dsn, conn) -> None:
    a, b = await make_tenant(dsn), await make_tenant(dsn)
    person = await make_person(
        conn, origin=suite.gateway, tenant_id=a.tenant_id, role="admin",
        memberships={b.tenant_id: "admin"},
    )  # fmt: skip
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        r = await client.post("/api/v1/me/tenant", json={"tenant": b.slug}, headers=person.headers)
        new = set_cookie(r, cookies.SESSION)
        # a tab that still has the old id signs out within the grace period
        out = await client.post(
            "/auth/logout", headers={**person.headers, "accept": "application/json"}
        )
        assert out.status_code == 200, out.text
        ended = await conn.fetchrow(
            "SELECT ended_at, end_reason FROM sessions WHERE id = $1", person.session_id
        )
        assert ended["ended_at"] is not None and ended["end_reason"] == "logout"
        client.cookies.clear()
        me = await client.get("/api/v1/me", headers={"cookie": f"{cookies.SESSION}={new}"})
        assert me.status_code == 401 and me.json()["code"] == "session_expired"


async def test_my_sessions_list_and_end(suite, dsn, conn) -> None:
    a = await make_tenant(dsn)
    person = await make_person(conn, origin=suite.gateway, tenant_id=a.tenant_id,
                               role="viewer")  # fmt: skip
    other = await make_person(conn, origin=suite.gateway, tenant_id=a.tenant_id,
                              role="viewer")  # fmt: skip
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        listed = (await client.get("/api/v1/me/sessions", headers=person.cookie)).json()
        assert [(s["id"], s["current"]) for s in listed["items"]] == [
            (str(person.session_id), True)
        ]
        # someone else's session, or one that does not exist: 404, nothing ended
        for sid in (other.session_id, uuid.uuid4()):
            r = await client.delete(f"/api/v1/me/sessions/{sid}", headers=person.headers)
            assert r.status_code == 404 and r.json()["code"] == "session_not_found"
        assert (await client.get("/api/v1/me", headers=other.cookie)).status_code == 200
        # an API key has no sessions
        r = await client.get("/api/v1/me/sessions", headers=a.headers)
        assert r.status_code == 403 and r.json()["code"] == "session_required"
        r = await client.delete(f"/api/v1/me/sessions/{person.session_id}", headers=person.headers)
        assert r.status_code == 200 and r.json()["current"] is True
        client.cookies.clear()
        assert (await client.get("/api/v1/me", headers=person.cookie)).status_code == 401
