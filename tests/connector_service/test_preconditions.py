"""ETags on installs and If-Match on changing them, through the gateway (real processes): the
ETag follows the install's settings (config, name, sync interval, version), not its status; a
PATCH or DELETE with a stale ETag changes nothing and answers 412 with the install as it is now;
of two PATCHes made against the same ETag at the same time exactly one applies."""

from __future__ import annotations

import asyncio
import re

import httpx

from common.roles import Role
from marketplace_service.catalog.service import register_deployed
from tests.connector_service.rig import (
    Rig,
    fetch,
    get_url,
    install_crm,
    register,
    wait_status,
)
from tests.support import TenantKey, connected, make_tenant

PROBLEM = "application/problem+json"
STRONG = re.compile(r'^"[\x21\x23-\x7e]+"$')


async def _installed(rig: Rig, dsn: str, client: httpx.AsyncClient) -> tuple[str, str]:
    """A demo CRM install, checked (``active``): its id and ETag."""
    iid = await install_crm(client, rig, await register(dsn, rig.crm_connector.url))
    assert (await wait_status(client, iid, "active"))["status"] == "active"
    r = await client.get(f"/api/v1/integrations/{iid}")
    return iid, r.headers["etag"]


async def _audited(dsn: str, tenant: TenantKey, action: str) -> int:
    rows = await fetch(dsn, "SELECT count(*) FROM audit_logs WHERE tenant_id = $1 AND action = $2",
                       tenant.tenant_id, action)  # fmt: skip
    return rows[0][0]


async def test_the_etag_follows_settings_not_status(rig, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    async with httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers) as client:
        slug = await register(dsn, rig.crm_connector.url)
        r = await client.post("/api/v1/integrations", json={
            "connector": slug, "config": {"base_url": rig.crm.url},
            "credentials": {"api_key": rig.crm_key}})  # fmt: skip
        assert r.status_code == 201, r.text
        iid, created = r.json()["id"], r.headers["etag"]
        assert STRONG.match(created) and r.json()["etag"] == created
        # the check that follows an install changes its status, not its ETag
        assert (await wait_status(client, iid, "active"))["status"] == "active"
        path = f"/api/v1/integrations/{iid}"
        got = await client.get(path)
        assert got.headers["etag"] == got.json()["etag"] == created
        for method, suffix, body in (
            ("POST", "/check", None), ("POST", "/disable", None), ("POST", "/enable", None),
            ("PUT", "/setup-progress", {"done": [0]}),
        ):  # fmt: skip
            r = await client.request(method, path + suffix, json=body)
            assert r.status_code == 200, r.text
            assert r.headers["etag"] == r.json()["etag"] == created, suffix
        listed = (await client.get("/api/v1/integrations")).json()["items"]
        assert [i["etag"] for i in listed] == [created]
        assert "settings_revision" not in listed[0]

        # each setting changes it: the answer and every later GET carry the new one
        seen = {created}
        for change in ({"sync_interval_seconds": 60}, {"connector_name": "Sales CRM"},
                       {"config": {"base_url": rig.crm.url, "page_size": 50}}):  # fmt: skip
            r = await client.patch(path, json=change)
            assert r.status_code == 200, r.text
            assert r.headers["etag"] == r.json()["etag"] not in seen, change
            seen.add(r.headers["etag"])
            assert (await client.get(path)).headers["etag"] == r.headers["etag"]
        # a PATCH that changes nothing keeps it
        again = await client.patch(path, json={"sync_interval_seconds": 60})
        assert again.headers["etag"] == r.headers["etag"]


async def test_if_match_applies_a_change_only_to_what_was_read(rig, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    async with httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers) as client:
        iid, first = await _installed(rig, dsn, client)
        path = f"/api/v1/integrations/{iid}"
        r = await client.patch(path, json={"sync_interval_seconds": 120},
                               headers={"If-Match": first})  # fmt: skip
        assert r.status_code == 200, r.text
        second = r.headers["etag"]
        assert second != first and r.json()["sync_interval_seconds"] == 120

        # the ETag read before that change no longer matches: 412, the install as it is now
        before = (await client.get(path)).json()
        r = await client.patch(path, json={"sync_interval_seconds": 30, "config": {"x": 1}},
                               headers={"If-Match": first})  # fmt: skip
        assert r.status_code == 412 and r.headers["content-type"] == PROBLEM
        problem = r.json()
        assert problem["code"] == "precondition_failed" and problem["status"] == 412
        assert r.headers["etag"] == second == problem["current"]["etag"]
        assert problem["current"] == before  # as GET answers it (circuit included)
        assert (await client.get(path)).json() == before  # nothing changed
        assert await _audited(dsn, t, "integration.updated") == 1

        # one of several ETags, or *, matches; a weak one never does (strong comparison)
        r = await client.patch(path, json={"connector_name": "Listed"},
                               headers={"If-Match": f'{first}, {second}'})  # fmt: skip
        assert r.status_code == 200, r.text
        third = r.headers["etag"]
        r = await client.patch(path, json={"connector_name": "Weak"},
                               headers={"If-Match": f"W/{third}"})  # fmt: skip
        assert r.status_code == 412
        r = await client.patch(path, json={"connector_name": "Any"}, headers={"If-Match": "*"})
        assert r.status_code == 200 and r.json()["connector_name"] == "Any"
        fourth = r.headers["etag"]
        # without If-Match, PATCH works as it always did
        r = await client.patch(path, json={"connector_name": "Plain"})
        assert r.status_code == 200 and r.headers["etag"] not in (first, second, third, fourth)

        # malformed: a clear 400, nothing changed
        for bad in ("not-quoted", '"a" "b"', '*, "a"', '"unterminated', ","):
            r = await client.patch(path, json={"connector_name": "Bad"}, headers={"If-Match": bad})
            assert r.status_code == 400, (bad, r.text)
            assert r.json()["code"] == "invalid_if_match" and "If-Match" in r.json()["detail"]
        assert (await client.get(path)).json()["connector_name"] == "Plain"

        # the precondition is evaluated before the body: a stale ETag with a bad config is 412
        r = await client.patch(path, json={"config": {"base_url": 5}}, headers={"If-Match": first})
        assert r.status_code == 412
        # an install that does not exist is 404 whatever If-Match says
        missing = "/api/v1/integrations/00000000-0000-0000-0000-000000000000"
        assert (await client.patch(missing, json={}, headers={"If-Match": "*"})).status_code == 404


async def test_two_changes_against_the_same_etag_one_applies(rig, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    async with httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers) as client:
        iid, tag = await _installed(rig, dsn, client)
        path = f"/api/v1/integrations/{iid}"
        for round_ in range(5):
            names = [f"A{round_}", f"B{round_}"]
            answers = await asyncio.gather(*(
                client.patch(path, json={"connector_name": n}, headers={"If-Match": tag})
                for n in names
            ))  # fmt: skip
            codes = sorted(r.status_code for r in answers)
            assert codes == [200, 412], [r.text for r in answers]
            won = next(r for r in answers if r.status_code == 200)
            lost = next(r for r in answers if r.status_code == 412)
            # the loser sees the winner's change, and the winner's ETag
            assert lost.json()["current"]["connector_name"] == won.json()["connector_name"]
            assert lost.headers["etag"] == won.headers["etag"] != tag
            now = (await client.get(path)).json()
            assert now["connector_name"] == won.json()["connector_name"]
            tag = won.headers["etag"]
        assert await _audited(dsn, t, "integration.updated") == 5


async def test_delete_with_if_match(rig, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    async with httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers) as client:
        iid, tag = await _installed(rig, dsn, client)
        path = f"/api/v1/integrations/{iid}"
        changed = await client.patch(path, json={"connector_name": "Renamed"})
        r = await client.delete(path, headers={"If-Match": tag})
        assert r.status_code == 412 and r.json()["current"]["connector_name"] == "Renamed"
        assert (await client.get(path)).status_code == 200  # still installed
        assert await _audited(dsn, t, "integration.deleted") == 0
        r = await client.delete(path, headers={"If-Match": changed.headers["etag"]})
        assert r.status_code == 204
        assert (await client.get(path)).status_code == 404


async def test_an_upgrade_changes_the_etag(rig, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    async with httpx.AsyncClient(base_url=rig.suite.gateway, headers=t.headers) as client:
        slug = await register(dsn, rig.crm_connector.url)
        iid = await install_crm(client, rig, slug)
        path = f"/api/v1/integrations/{iid}"
        before = (await client.get(path)).headers["etag"]
        manifest = await get_url(rig.crm_connector.url + "/manifest")
        newer = {**manifest, "name": slug, "display_name": slug, "version": "99.0.0"}
        async with connected(dsn) as conn:
            await register_deployed(conn, manifest=newer, endpoint_url=rig.crm_connector.url,
                                    category="crm", vendor="tests")  # fmt: skip
        r = await client.post(path + "/upgrade", json={})
        assert r.status_code == 200, r.text
        assert r.json()["version"] == "99.0.0"
        assert r.headers["etag"] == r.json()["etag"] != before
        assert (await client.get(path)).headers["etag"] == r.headers["etag"]
        # a change made against the ETag read before the upgrade is refused
        r = await client.patch(path, json={"connector_name": "Old"}, headers={"If-Match": before})
        assert r.status_code == 412 and r.json()["current"]["version"] == "99.0.0"
