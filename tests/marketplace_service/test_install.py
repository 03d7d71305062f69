"""Installing from the marketplace: through connector_service's create, answers passed back
unchanged, idempotent under an Idempotency-Key, audited (real processes, real Postgres)."""

from __future__ import annotations

import asyncio
import contextlib
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


class SlowProxy:
    """A TCP proxy on loopback that forwards requests at once and holds each answer back for
    ``delay`` seconds: the request is served, its answer arrives late."""

    def __init__(self, upstream_port: int, delay: float) -> None:
        self.upstream_port, self.delay, self.port = upstream_port, delay, free_port()
        self._server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> SlowProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, delay: float):
            first = True
            while data := await src.read(65536):
                if first and delay:
                    await asyncio.sleep(delay)
                first = False
                dst.write(data)
                await dst.drain()
            dst.close()

        with contextlib.suppress(ConnectionError, OSError):
            await asyncio.gather(pipe(reader, up_writer, 0), pipe(up_reader, writer, self.delay))


async def test_an_install_whose_answer_timed_out_is_not_made_twice(dsn, tmp_path):
    """connector_service makes the install but its answer arrives after the marketplace gave up
    (504). A retry with the same key gets that install back (connector_service's stored
    answer, through a key derived from the caller's) instead of making a second one."""
    ports = {name: free_port() for name in ("gateway", "connector_service", "marketplace_service")}
    async with SlowProxy(ports["connector_service"], delay=3.0) as proxy:
        running = start_suite(
            dsn, tmp_path / "services.log", ports=ports,
            SEEDOS_MARKETPLACE_CONNECTOR_SERVICE_URL=f"http://127.0.0.1:{proxy.port}",
            SEEDOS_MARKETPLACE_CONNECTOR_SERVICE_TIMEOUT_SECONDS="1",
        )  # fmt: skip
        try:
            t = await make_tenant(dsn, role=Role.editor)
            several = {**INSTALL, "connector_name": "warehouse"}  # postgresql allows several
            key = {"Idempotency-Key": f"slow-{uuid.uuid4()}"}
            installs = "SELECT id FROM integration_connectors WHERE tenant_id = $1"
            async with httpx.AsyncClient(base_url=running.gateway, headers=t.headers,
                                         timeout=30) as client:  # fmt: skip
                first = await client.post("/api/v1/marketplace/install", json=several,
                                          headers=key)  # fmt: skip
                assert first.status_code == 504, first.text
                assert first.json()["code"] == "upstream_timeout"
                made = await fetch(dsn, installs, t.tenant_id)
                assert len(made) == 1  # made, though nobody heard

                proxy.delay = 0
                retry = await client.post("/api/v1/marketplace/install", json=several,
                                          headers=key)  # fmt: skip
                assert retry.status_code == 201, retry.text
                assert retry.json()["id"] == str(made[0]["id"])
                again = await client.post("/api/v1/marketplace/install", json=several,
                                          headers=key)  # fmt: skip
                assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
                assert len(await fetch(dsn, installs, t.tenant_id)) == 1
                # without a key, nothing stops a second one (several are allowed)
                r = await client.post("/api/v1/marketplace/install", json=several)
                assert r.status_code == 201
                assert len(await fetch(dsn, installs, t.tenant_id)) == 2
        finally:
            running.supervisor.stop()
