"""Installing from the marketplace: through connector_service's create, answers passed back
unchanged, idempotent under an Idempotency-Key, audited (real processes, real Postgres)."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from common.roles import Role
from tests.conftest import start_suite
from tests.connector_service.rig import fetch
from tests.support import add_key, free_port, make_tenant

PG = {"host": "db.example.com", "port": 5432, "database": "app", "username": "sync"}
INSTALL = {"connector": "postgresql", "config": PG, "credentials": {"password": "a-long-secret-1"}}


async def test_install_through_the_marketplace_appears_in_integrations(suite, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        r = await client.post("/api/v1/marketplace/install", json=INSTALL)
        assert r.status_code == 201, r.text
        iid = r.json()["id"]
        assert "a-long-secret" not in r.text
        listed = (await client.get("/api/v1/integrations")).json()["items"]
        assert [i["id"] for i in listed] == [iid]
        r = await client.post("/api/v1/marketplace/uninstall", json={"integration_id": iid})
        assert r.status_code == 204
        assert (await client.get(f"/api/v1/integrations/{iid}")).status_code == 404
        r = await client.post("/api/v1/marketplace/uninstall", json={"integration_id": iid})
        assert r.status_code == 404 and r.json()["code"] == "integration_not_found"
    rows = await fetch(dsn, "SELECT action, target, payload FROM audit_logs WHERE tenant_id = $1"
                       " AND action LIKE 'marketplace.%' ORDER BY seq", t.tenant_id)  # fmt: skip
    assert [(r["action"], r["target"]) for r in rows[:2]] == [
        ("marketplace.install", f"integration:{iid}"),
        ("marketplace.uninstall", f"integration:{iid}"),
    ]
    assert rows[0]["payload"] == {"connector": "postgresql", "status": 201}


async def test_failed_validation_comes_back_unchanged_and_stores_nothing(suite, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    bad = {"connector": "postgresql", "config": {**PG, "port": "not a port"},
           "scopes": ["not-offered"]}  # fmt: skip
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        direct = await client.post("/api/v1/integrations", json=bad)
        via = await client.post("/api/v1/marketplace/install", json=bad)
        assert via.status_code == direct.status_code == 422
        assert via.headers["content-type"] == "application/problem+json"
        assert via.json()["code"] == "invalid_config"
        assert via.json()["errors"] == direct.json()["errors"] and len(via.json()["errors"]) >= 3
        r = await client.post("/api/v1/marketplace/install", json={"connector": "no-such"})
        assert r.status_code == 422 and r.json()["code"] == "connector_unknown"
        r = await client.post("/api/v1/marketplace/install", json={**INSTALL, "typo": 1})
        assert r.status_code == 422 and r.json()["code"] == "validation_failed"
        assert (await client.get("/api/v1/integrations")).json()["items"] == []
        viewer = await add_key(dsn, t, Role.viewer)
        r = await client.post("/api/v1/marketplace/install", json=INSTALL, headers=viewer.headers)
        assert r.status_code == 403
    assert await fetch(dsn, "SELECT 1 FROM integration_connectors WHERE tenant_id = $1",
                       t.tenant_id) == []  # fmt: skip


async def test_idempotent_under_a_key(suite, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    single = {"connector": "hubspot", "config": {}}  # single-instance: a 2nd run would be 409
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        answers = await asyncio.gather(*(
            client.post("/api/v1/marketplace/install", json=single, headers=key) for _ in range(8)
        ))  # fmt: skip
        assert sorted({a.status_code for a in answers}) in ([201], [201, 409]), [
            a.text for a in answers
        ]
        firsts = [
            a for a in answers if a.status_code == 201 and "idempotent-replayed" not in a.headers
        ]
        assert len(firsts) == 1
        again = await client.post("/api/v1/marketplace/install", json=single, headers=key)
        assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == firsts[0].json()["id"]
        other = await client.post("/api/v1/marketplace/install",
                                  json={**single, "connector_name": "x"}, headers=key)  # fmt: skip
        assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
        # without the key the single-instance rule answers, unchanged
        r = await client.post("/api/v1/marketplace/install", json=single)
        assert r.status_code == 409 and r.json()["code"] == "already_installed"
        assert len((await client.get("/api/v1/integrations")).json()["items"]) == 1


async def test_connector_service_down_is_a_fast_503_and_stores_nothing(dsn, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    running = start_suite(
        dsn, tmp_path / "services.log", SEEDOS_MARKETPLACE_CONNECTOR_SERVICE_URL=dead
    )
    try:
        t = await make_tenant(dsn, role=Role.editor)
        key = {"Idempotency-Key": "down-1"}
        async with httpx.AsyncClient(base_url=running.gateway, headers=t.headers) as client:
            started = time.monotonic()
            r = await client.post("/api/v1/marketplace/install", json=INSTALL, headers=key)
            assert r.status_code == 503 and r.json()["code"] == "upstream_unavailable", r.text
            assert time.monotonic() - started < 3
        # the key was not kept for a failure worth retrying
        assert await fetch(dsn, "SELECT 1 FROM idempotency_keys WHERE tenant_id = $1",
                           t.tenant_id) == []  # fmt: skip
    finally:
        running.supervisor.stop()
