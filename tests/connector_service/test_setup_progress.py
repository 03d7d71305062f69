"""The setup guide's progress per install: PUT .../setup-progress keeps which steps are done,
GET shows it, editors and admins write it, viewers read it, and nonsense is refused."""

from __future__ import annotations

import httpx

from common.roles import Role
from tests.support import add_key, make_tenant

PG = {"host": "db.example.com", "port": 5432, "database": "app", "username": "sync"}


async def _install(client: httpx.AsyncClient) -> str:
    r = await client.post("/api/v1/integrations", json={
        "connector": "postgresql", "config": PG,
        "credentials": {"password": "a-long-enough-password"}})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["setup_done"] == []
    return r.json()["id"]


async def test_progress_is_kept_with_the_install(suite, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        iid = await _install(client)
        path = f"/api/v1/integrations/{iid}/setup-progress"
        r = await client.put(path, json={"done": [2, 0, 2]})
        assert r.status_code == 200, r.text
        assert r.json()["setup_done"] == [0, 2]  # sorted, each once
        assert (await client.get(f"/api/v1/integrations/{iid}")).json()["setup_done"] == [0, 2]
        listed = (await client.get("/api/v1/integrations")).json()["items"]
        assert [i["setup_done"] for i in listed if i["id"] == iid] == [[0, 2]]
        # the whole list each time: unticking is sending the rest
        r = await client.put(path, json={"done": [2]})
        assert r.json()["setup_done"] == [2]
        r = await client.put(path, json={"done": []})
        assert r.json()["setup_done"] == []


async def test_viewers_read_and_bad_progress_is_refused(suite, dsn):
    t = await make_tenant(dsn, role=Role.admin)
    viewer = await add_key(dsn, t, Role.viewer)
    other = await make_tenant(dsn, role=Role.admin)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        iid = await _install(client)
        path = f"/api/v1/integrations/{iid}/setup-progress"
        for bad in ({"done": [-1]}, {"done": [20]}, {"done": list(range(21))},
                    {"done": ["first"]}, {}, {"done": [0], "extra": 1}):  # fmt: skip
            r = await client.put(path, json=bad)
            assert r.status_code == 422, (bad, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
        assert (await client.put(path, json={"done": [1]})).status_code == 200
        audit = await client.get(
            "/api/v1/audit-logs", params={"action": "integration.setup_progress"}
        )
        assert [e["payload"]["done"] for e in audit.json()["items"]] == [[1]]
        missing = "/api/v1/integrations/00000000-0000-0000-0000-000000000000/setup-progress"
        assert (await client.put(missing, json={"done": [0]})).status_code == 404
    async with httpx.AsyncClient(base_url=suite.gateway, headers=viewer.headers) as client:
        assert (await client.put(path, json={"done": [0]})).status_code == 403
        assert (await client.get(f"/api/v1/integrations/{iid}")).json()["setup_done"] == [1]
    async with httpx.AsyncClient(base_url=suite.gateway, headers=other.headers) as client:
        assert (await client.put(path, json={"done": [0]})).status_code == 404
