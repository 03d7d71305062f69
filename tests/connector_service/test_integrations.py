"""Installing, configuring and uninstalling connectors through the gateway (real processes)."""

from __future__ import annotations

import asyncpg
import httpx

from common.roles import Role
from tests.support import add_key, make_tenant

PROBLEM = "application/problem+json"
PG = {"host": "db.example.com", "port": 5432, "database": "app", "username": "sync"}


async def _count(dsn: str, sql: str, *args) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def test_install_configure_disable_and_uninstall(suite, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        r = await client.post("/api/v1/integrations", json={
            "connector": "postgresql", "connector_name": "Warehouse", "config": PG,
            "credentials": {"password": "hunter2-long-password"}})  # fmt: skip
        assert r.status_code == 201, r.text
        item = r.json()
        assert item["status"] == "pending" and "no deployed connector" in item["status_reason"]
        assert item["config"] == PG and "hunter2" not in r.text
        iid = item["id"]
        creds = (await client.get(f"/api/v1/integrations/{iid}/credentials")).json()
        assert creds == {"fields_set": ["password"]}
        # the secret is stored encrypted: not in any column in clear
        raw = await _count(
            dsn, "SELECT count(*) FROM credentials WHERE integration_id = $1"
            " AND position('hunter2'::bytea in ciphertext) > 0", item["id"],
        )  # fmt: skip
        assert raw == 0

        r = await client.patch(f"/api/v1/integrations/{iid}", json={"config": {**PG, "port": 6543}})
        assert r.status_code == 200 and r.json()["config"]["port"] == 6543
        r = await client.patch(f"/api/v1/integrations/{iid}", json={"config": {**PG, "port": "x"}})
        assert r.status_code == 422 and r.json()["code"] == "invalid_config"
        assert (await client.get(f"/api/v1/integrations/{iid}")).json()["config"]["port"] == 6543

        r = await client.post(f"/api/v1/integrations/{iid}/disable")
        assert r.json()["status"] == "disabled"
        r = await client.post(f"/api/v1/integrations/{iid}/enable")
        assert r.json()["status"] == "pending"
        r = await client.put(f"/api/v1/integrations/{iid}/credentials",
                             json={"credentials": {"password": "rotated-password"}})  # fmt: skip
        assert r.status_code == 200 and r.json() == {"fields_set": ["password"]}

        assert (await client.delete(f"/api/v1/integrations/{iid}")).status_code == 204
        assert (await client.get(f"/api/v1/integrations/{iid}")).status_code == 404
        assert (await client.delete(f"/api/v1/integrations/{iid}")).status_code == 404
    assert await _count(dsn, "SELECT count(*) FROM credentials WHERE integration_id = $1",
                        item["id"]) == 0  # fmt: skip
    actions = await _count(
        dsn, "SELECT count(DISTINCT action) FROM audit_logs WHERE tenant_id = $1"
        " AND action LIKE 'integration.%'", t.tenant_id,
    )  # fmt: skip
    assert actions == 6  # created, updated, disabled, enabled, credentials_set, deleted


async def test_bad_installs_list_every_problem_and_store_nothing(suite, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        r = await client.post("/api/v1/integrations", json={
            "connector": "postgresql",
            "config": {"host": "db", "port": 70000, "password": "in-the-wrong-place"},
            "credentials": {"username": "not-a-secret-field"}})  # fmt: skip
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
        problem = r.json()
        paths = {e["path"] for e in problem["errors"]}
        assert {"/config/password", "/credentials/username", "/config/port",
                "/credentials/password"} <= paths  # fmt: skip
        assert "in-the-wrong-place" not in r.text
        r = await client.post(
            "/api/v1/integrations",
            json={
                "connector": "hubspot",
                "scopes": ["crm.objects.contacts.read", "admin.everything"],
            },
        )
        assert r.status_code == 422
        assert [e["path"] for e in r.json()["errors"]] == ["/scopes"]
        r = await client.post("/api/v1/integrations", json={"connector": "no-such-thing"})
        assert r.status_code == 422 and r.json()["code"] == "connector_unknown"
        r = await client.post("/api/v1/integrations", json={"connector": "hubspot", "extra": 1})
        assert r.status_code == 422
        listed = (await client.get("/api/v1/integrations")).json()
    assert listed["items"] == []


async def test_single_instance_rule_and_roles(suite, dsn):
    editor = await make_tenant(dsn, role=Role.editor)
    viewer = await add_key(dsn, editor, Role.viewer)
    other = await make_tenant(dsn, role=Role.editor)
    body = {"connector": "sendgrid", "credentials": {"api_key": "SG.secretvalue.abc123"}}
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        r = await client.post("/api/v1/integrations", json=body, headers=viewer.headers)
        assert r.status_code == 403
        bad = {"connector": "sendgrid", "credentials": {"api_key": "plain-secret-not-sg"}}
        r = await client.post("/api/v1/integrations", json=bad, headers=editor.headers)
        assert r.status_code == 422 and "plain-secret-not-sg" not in r.text
        first = await client.post("/api/v1/integrations", json=body, headers=editor.headers)
        assert first.status_code == 201, first.text
        again = await client.post("/api/v1/integrations", json=body, headers=editor.headers)
        assert again.status_code == 409 and again.json()["code"] == "already_installed"
        # another tenant may install it; and cannot see or touch the first tenant's
        assert (await client.post("/api/v1/integrations", json=body,
                                  headers=other.headers)).status_code == 201  # fmt: skip
        iid = first.json()["id"]
        for method, path in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/credentials")):
            r = await client.request(method, f"/api/v1/integrations/{iid}{path}",
                                     headers=other.headers, json={} if method == "PATCH" else None)  # fmt: skip
            assert r.status_code == 404, (method, path, r.text)
        missing = await client.post("/api/v1/integrations", json={"connector": "stripe"},
                                    headers=editor.headers)  # fmt: skip
        assert missing.status_code == 422
        assert missing.json()["errors"] == [{"path": "/credentials/api_key", "message": "required"}]


async def test_concurrent_installs_of_a_single_instance_connector(suite, dsn):
    import asyncio

    t = await make_tenant(dsn, role=Role.editor)
    body = {"connector": "sendgrid", "credentials": {"api_key": "SG.secretvalue.abc123"}}
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        results = await asyncio.gather(
            *(client.post("/api/v1/integrations", json=body) for _ in range(6))
        )
    assert sorted(r.status_code for r in results) == [201] + [409] * 5
