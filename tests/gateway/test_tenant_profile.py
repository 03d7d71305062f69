"""The tenant profile through the gateway: everyone reads it, admins change it (audited)."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from common import db
from common.errors import InvalidRequest
from common.roles import Role
from gateway.tenants import service as tenants
from tests.support import add_key, make_tenant

PROBLEM = "application/problem+json"


async def _audit(dsn: str, tenant_id) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(
            "SELECT action, user_id, target, payload::text AS payload FROM audit_logs"
            " WHERE tenant_id = $1 AND action = 'tenant.updated' ORDER BY seq",
            tenant_id,
        )
    finally:
        await conn.close()


async def test_every_role_reads_admins_change_and_it_is_audited(suite, dsn):
    admin = await make_tenant(dsn, industry="fintech", size=120)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        for role in (Role.viewer, Role.editor, Role.publisher):
            low = await add_key(dsn, admin, role)
            r = await client.get("/api/v1/tenant", headers=low.headers)
            assert r.status_code == 200, r.text
            assert r.json()["industry"] == "fintech" and r.json()["size"] == 120
            assert r.json()["description"] is None
            r = await client.patch("/api/v1/tenant", json={"size": 5}, headers=low.headers)
            assert r.status_code == 403 and r.headers["content-type"] == PROBLEM
            assert r.json()["code"] == "forbidden"

        r = await client.patch(
            "/api/v1/tenant",
            json={"industry": "  HealthCare ", "size": 40, "description": "Clinics: invoices"},
            headers=admin.headers,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["industry"], body["size"], body["description"]) == (
            "healthcare", 40, "Clinics: invoices")  # fmt: skip
        assert body["slug"] == admin.slug
        got = (await client.get("/api/v1/tenant", headers=admin.headers)).json()
        assert got == body
        # the same values again change nothing and record nothing
        r = await client.patch("/api/v1/tenant", json={"size": 40}, headers=admin.headers)
        assert r.status_code == 200 and r.json()["updated_at"] == body["updated_at"]
        # null clears an optional field
        r = await client.patch("/api/v1/tenant", json={"description": None}, headers=admin.headers)
        assert r.status_code == 200 and r.json()["description"] is None
        # the forbidden attempts above changed nothing
        assert r.json()["size"] == 40

    entries = await _audit(dsn, admin.tenant_id)
    assert len(entries) == 2
    first = entries[0]
    assert first["user_id"] == f"apikey:{admin.key_id}"
    assert first["target"] == f"tenant:{admin.tenant_id}"
    assert '"fields": ["description", "industry", "size"]' in first["payload"]
    assert "Clinics" not in first["payload"]  # the prose is the tenant's: not in the trail
    assert '"fields": ["description"]' in entries[1]["payload"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid_input"),
        ({"size": 0}, "validation_failed"),
        ({"size": -3}, "validation_failed"),
        ({"size": "many"}, "validation_failed"),
        ({"industry": ""}, "validation_failed"),
        ({"industry": "x" * 61}, "validation_failed"),
        ({"description": "x" * 2001}, "validation_failed"),
        ({"name": "   "}, "validation_failed"),
        ({"name": None}, "invalid_name"),
        ({"slug": "other"}, "validation_failed"),
        ({"size": 10, "plan": "free"}, "validation_failed"),
    ],
)
async def test_bad_input_is_422_and_changes_nothing(suite, dsn, body, code):
    admin = await make_tenant(dsn, industry="retail", size=30)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=admin.headers) as client:
        r = await client.patch("/api/v1/tenant", json=body)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["code"] == code
        r = await client.patch("/api/v1/tenant", content=b"{not json", headers={
            "content-type": "application/json"})  # fmt: skip
        assert r.status_code == 422 and r.json()["code"] == "invalid_json"
        got = (await client.get("/api/v1/tenant")).json()
    assert (got["industry"], got["size"], got["description"]) == ("retail", 30, None)
    assert await _audit(dsn, admin.tenant_id) == []


async def test_without_a_key_is_401(suite):
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        for method in ("GET", "PATCH"):
            r = await client.request(method, "/api/v1/tenant", json={"size": 3})
            assert r.status_code == 401 and r.headers["content-type"] == PROBLEM


async def test_creating_a_tenant_checks_the_industry_as_patch_does(dsn):
    conn = await db.connect(dsn)
    try:
        with pytest.raises(InvalidRequest) as refused:
            await tenants.create(conn, slug="too-long-industry", name="X", industry="x" * 61)
        assert refused.value.code == "invalid_industry"
        assert (
            await conn.fetchval("SELECT count(*) FROM tenants WHERE slug = 'too-long-industry'")
            == 0
        )
    finally:
        await conn.close()
