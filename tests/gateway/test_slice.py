"""The first slice through real processes: gateway -> connector_service / marketplace_service."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import httpx
import pytest

from common.roles import Role
from tests.support import add_key, make_tenant

PROBLEM = "application/problem+json"


async def insert_integrations(dsn: str, tenant_id: uuid.UUID, names: list[str]) -> None:
    """Installed connectors arrive with the connector-service issue; until then, rows."""
    conn = await asyncpg.connect(dsn)
    try:
        for name in names:
            await conn.execute(
                "INSERT INTO integration_connectors (tenant_id, connector_name, service_name)"
                " VALUES ($1, $2, $3)",
                tenant_id,
                name,
                name.split("-")[0],
            )
    finally:
        await conn.close()


async def test_me_with_api_key(suite, dsn):
    t = await make_tenant(dsn, role=Role.editor, industry="fintech", size=120)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        r = await client.get("/api/v1/me", headers=t.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tenant"]["slug"] == t.slug
    assert body["tenant"]["industry"] == "fintech"
    assert body["role"] == "editor"
    assert body["subject"] == f"apikey:{t.key_id}"
    assert body["permissions"] == ["read", "write"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sk_seedos_" + "x" * 43},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
    ],
    ids=["none", "unknown-key", "malformed", "basic", "empty"],
)
async def test_missing_or_wrong_key_is_401_problem(suite, headers):
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        for path in ("/api/v1/me", "/api/v1/integrations", "/api/v1/marketplace/connectors"):
            r = await client.get(path, headers=headers)
            assert r.status_code == 401, (path, r.text)
            assert r.headers["content-type"] == PROBLEM
            assert r.json()["code"] in {"unauthorized", "invalid_credentials"}
            assert r.headers["www-authenticate"] == "Bearer"


async def test_revocation_through_api_is_immediate(suite, dsn):
    admin = await make_tenant(dsn)
    other = await add_key(dsn, admin, Role.viewer)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        assert (await client.get("/api/v1/me", headers=other.headers)).status_code == 200
        r = await client.delete(f"/api/v1/api-keys/{other.key_id}", headers=admin.headers)
        assert r.status_code == 200, r.text
        assert r.json()["revoked_at"] is not None
        assert (await client.get("/api/v1/me", headers=other.headers)).status_code == 401


async def test_revocation_elsewhere_takes_effect_within_5s(suite, dsn):
    """Revoked by another process (the CLI, another gateway replica): the cache bounds it."""
    t = await make_tenant(dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        assert (await client.get("/api/v1/me", headers=t.headers)).status_code == 200
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1", t.key_id)
        finally:
            await conn.close()
        revoked_at = time.monotonic()
        while (await client.get("/api/v1/me", headers=t.headers)).status_code == 200:
            assert time.monotonic() - revoked_at < 5.0, "revoked key still accepted after 5 s"
            await asyncio.sleep(0.05)
        assert time.monotonic() - revoked_at <= 5.0


async def test_roles(suite, dsn):
    admin = await make_tenant(dsn)
    viewer = await add_key(dsn, admin, Role.viewer)
    editor = await add_key(dsn, admin, Role.editor)
    publisher = await add_key(dsn, admin, Role.publisher)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        for low in (viewer, editor, publisher):
            r = await client.get("/api/v1/api-keys", headers=low.headers)
            assert r.status_code == 403, r.text
            assert r.headers["content-type"] == PROBLEM
            assert r.json()["code"] == "forbidden"
            r = await client.post("/api/v1/api-keys", json={"name": "x"}, headers=low.headers)
            assert r.status_code == 403
            # every role may read the tenant's integrations and the catalog
            assert (
                await client.get("/api/v1/integrations", headers=low.headers)
            ).status_code == 200
            r = await client.get("/api/v1/marketplace/connectors", headers=low.headers)
            assert r.status_code == 200
        r = await client.post(
            "/api/v1/api-keys", json={"name": "ci", "role": "viewer"}, headers=admin.headers
        )
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["key"].startswith("sk_seedos_") and created["role"] == "viewer"
        listed = (await client.get("/api/v1/api-keys", headers=admin.headers)).json()["items"]
        assert {k["id"] for k in listed} >= {created["id"], str(viewer.key_id)}
        assert all("key" not in k and "key_hash" not in k for k in listed)
        r = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {created['key']}"})
        assert r.json()["role"] == "viewer"


async def test_bad_api_key_input_is_422_and_changes_nothing(suite, dsn):
    admin = await make_tenant(dsn)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        before = (await client.get("/api/v1/api-keys", headers=admin.headers)).json()
        for body in (
            {"name": ""},
            {"name": "x", "role": "root"},
            {"nope": 1},
            [1, 2],
            {"name": "x", "expires_at": "2999-01-01T00:00:00"},  # no time zone
            {"name": "x", "expires_at": "yesterday"},
        ):
            r = await client.post("/api/v1/api-keys", json=body, headers=admin.headers)
            assert r.status_code == 422, r.text
            assert r.headers["content-type"] == PROBLEM
            assert r.json()["code"] == "validation_failed"
        past = {"name": "x", "expires_at": "2001-01-01T00:00:00Z"}
        r = await client.post("/api/v1/api-keys", json=past, headers=admin.headers)
        assert r.status_code == 422 and r.json()["code"] == "invalid_expiry"
        r = await client.post(
            "/api/v1/api-keys", json={"name": "p", "role": "publisher"}, headers=admin.headers
        )
        assert r.status_code == 403 and r.json()["code"] == "role_not_grantable"
        r = await client.delete(f"/api/v1/api-keys/{uuid.uuid4()}", headers=admin.headers)
        assert r.status_code == 404 and r.json()["code"] == "api_key_not_found"
        after = (await client.get("/api/v1/api-keys", headers=admin.headers)).json()
    assert before == after


async def test_tenants_never_see_each_others_connectors(suite, dsn):
    a = await make_tenant(dsn, role=Role.viewer)
    b = await make_tenant(dsn, role=Role.viewer)
    await insert_integrations(dsn, a.tenant_id, ["salesforce-a", "slack-a"])
    await insert_integrations(dsn, b.tenant_id, ["hubspot-b"])
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        ra = (await client.get("/api/v1/integrations", headers=a.headers)).json()
        rb = (await client.get("/api/v1/integrations", headers=b.headers)).json()
        assert sorted(i["connector_name"] for i in ra["items"]) == ["salesforce-a", "slack-a"]
        assert [i["connector_name"] for i in rb["items"]] == ["hubspot-b"]
        foreign = ra["items"][0]["id"]
        r = await client.get(f"/api/v1/integrations/{foreign}", headers=b.headers)
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM
        r = await client.get(f"/api/v1/integrations/{foreign}", headers=a.headers)
        assert r.status_code == 200 and r.json()["connector_name"] in {"salesforce-a", "slack-a"}
        r = await client.get("/api/v1/integrations?service=slack", headers=a.headers)
        assert [i["connector_name"] for i in r.json()["items"]] == ["slack-a"]


async def test_integrations_cursor_pagination(suite, dsn):
    t = await make_tenant(dsn, role=Role.viewer)
    names = [f"svc{i}-x" for i in range(7)]
    await insert_integrations(dsn, t.tenant_id, names)
    seen: list[str] = []
    cursor = None
    pages = 0
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        while True:
            params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
            page = (
                await client.get("/api/v1/integrations", params=params, headers=t.headers)
            ).json()
            seen += [i["connector_name"] for i in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == 3 and sorted(seen) == sorted(names) and len(set(seen)) == 7
        r = await client.get("/api/v1/integrations?cursor=garbage!", headers=t.headers)
        assert r.status_code == 422 and r.json()["code"] == "invalid_cursor"
        r = await client.get("/api/v1/integrations?limit=0", headers=t.headers)
        assert r.status_code == 422


async def test_catalog_lists_every_entry_through_pages(suite, dsn):
    t = await make_tenant(dsn, role=Role.viewer)
    names: list[str] = []
    cursor = None
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        while True:
            params = {"limit": 10} | ({"cursor": cursor} if cursor else {})
            page = (await client.get("/api/v1/marketplace/connectors", params=params)).json()
            names += [e["name"] for e in page["items"]]
            if (cursor := page["next_cursor"]) is None:
                break
        assert len(names) >= 40 and names == sorted(names) and len(set(names)) == len(names)
        assert {"Salesforce", "HubSpot", "Slack", "Stripe"} <= set(names)
        featured = (await client.get("/api/v1/marketplace/connectors?featured=true")).json()
        assert featured["items"] and all(e["is_featured"] for e in featured["items"])
        detail = (await client.get("/api/v1/marketplace/connectors/salesforce")).json()
        assert detail["manifest"]["config_schema"]["type"] == "object"
        assert detail["auth_scheme"] == "oauth2"
        r = await client.get("/api/v1/marketplace/connectors/no-such-thing")
        assert r.status_code == 404 and r.json()["code"] == "connector_not_found"


async def test_openapi_document_is_merged(suite, dsn):
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        doc = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")
    assert {"/api/v1/me", "/api/v1/api-keys", "/api/v1/integrations",
            "/api/v1/marketplace/connectors"} <= set(doc["paths"])  # fmt: skip
    for path, method in (("/api/v1/integrations", "get"), ("/api/v1/api-keys", "post")):
        responses = doc["paths"][path][method]["responses"]
        assert "application/problem+json" in responses["422"]["content"], path
        assert "application/problem+json" in responses["401"]["content"], path
    schemas = doc["components"]["schemas"]
    for path in doc["paths"].values():
        for op in path.values():
            for ref in _refs(op):
                assert ref.removeprefix("#/components/schemas/") in schemas, ref
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def _refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


async def test_a_new_key_works_at_once_and_revoking_twice_records_once(suite, dsn):
    admin = await make_tenant(dsn)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        for i in range(15):  # the insert commits before the 201 is sent
            r = await client.post("/api/v1/api-keys", json={"name": f"k{i}"}, headers=admin.headers)
            me = await client.get(
                "/api/v1/me", headers={"Authorization": f"Bearer {r.json()['key']}"}
            )
            assert me.status_code == 200, (i, me.text)
        key_id = r.json()["id"]
        first = await client.delete(f"/api/v1/api-keys/{key_id}", headers=admin.headers)
        again = await client.delete(f"/api/v1/api-keys/{key_id}", headers=admin.headers)
        assert first.status_code == again.status_code == 200
        assert first.json()["revoked_at"] == again.json()["revoked_at"]
    conn = await asyncpg.connect(dsn)
    try:
        entries = await conn.fetchval(
            "SELECT count(*) FROM audit_logs WHERE action = 'api_key.revoked'"
            " AND payload->>'api_key_id' = $1",
            key_id,
        )
    finally:
        await conn.close()
    assert entries == 1


@pytest.mark.parametrize(
    "cursor",
    ["garbage!", "W10", "WyJ4IiwgNV0", "WzEsMl0", "eyJhIjoxfQ", "WyIyMDI0LTAxLTAxIiwibm9wZSJd"],
    ids=["not-base64", "empty-list", "number-part", "numbers", "object", "bad-uuid"],
)
async def test_crafted_cursors_are_422(suite, dsn, cursor):
    t = await make_tenant(dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        for path in ("/api/v1/integrations", "/api/v1/marketplace/connectors"):
            r = await client.get(path, params={"cursor": cursor})
            assert r.status_code == 422, (path, r.text)
            assert r.json()["code"] in {"invalid_cursor", "validation_failed"}


async def test_trailing_slash_does_not_leak_the_internal_address(suite, dsn):
    t = await make_tenant(dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        r = await client.get("/api/v1/integrations/")
    assert str(suite.ports["connector_service"]) not in r.headers.get("location", "")
    assert r.status_code in (404, 307, 308)
