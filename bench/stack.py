"""The stack the sync benches run against, set up and torn down in one ``with``.

A throwaway embedded PostgreSQL (migrated, demo data), the demo CRM seeded with contacts, the
example connector (in the catalog as ``bench-crm``), the three services in production mode on
free loopback ports, and a tenant whose admin API key installed the connector (page size 1,000,
scheduled runs off) and saw it become active. ``Stack.pids`` has every process's id (for their
memory and CPU time), ``Stack.seed_s`` how long seeding the CRM took.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from common import db, embedded, migrate
from common.crypto import KeyRing
from common.internal_auth import Principal
from common.roles import Role
from gateway.api_keys import service as api_keys
from gateway.tenants import service as tenants
from marketplace_service.catalog.service import register_deployed
from seedos_cli import demo
from seedos_cli.deployment_keys import ServiceKeys
from seedos_cli.supervisor import SERVICES, Supervisor
from seedos_sdk.testing import Served, free_port, start

ROOT = Path(__file__).resolve().parents[1]
SDK = ROOT / "sdk"


@dataclass
class Stack:
    dsn: str
    urls: dict[str, str]
    crm: Served
    connector: Served
    crm_key: str
    api: httpx.Client  # through the gateway, with the tenant's admin key
    api_key: str
    direct: httpx.Client  # straight to connector_service, with a minted internal token
    internal_token: str
    integration_id: str
    config: dict[str, Any] = field(default_factory=dict)
    credentials: dict[str, Any] = field(default_factory=dict)
    tmp: Path = Path()
    # the processes, by name: the three services, "crm", "connector" and "postgres" (the
    # postmaster; its backends are its children)
    pids: dict[str, int] = field(default_factory=dict)
    seed_s: float = 0.0  # seeding the CRM

    @property
    def base(self) -> str:
        return f"/api/v1/integrations/{self.integration_id}"


async def _prepare(dsn: str, connector_url: str) -> dict[str, Any]:
    conn = await db.connect(dsn)
    try:
        await migrate.apply(conn)
        await demo.seed(conn)
        async with httpx.AsyncClient() as client:
            manifest = (await client.get(connector_url + "/manifest")).json()
        manifest["name"] = "bench-crm"
        await register_deployed(conn, manifest=manifest, endpoint_url=connector_url,
                                category="crm", vendor="bench")  # fmt: skip
        slug = f"bench-{secrets.token_hex(4)}"
        async with conn.transaction():
            tenant = await tenants.create(conn, slug=slug, name="Bench", actor="system:bench")
            key = await api_keys.create(conn, tenant_id=tenant["id"], name="bench",
                                        role=Role.admin, created_by="bench")  # fmt: skip
        return {"tenant_id": tenant["id"], "slug": slug, "api_key": key["key"]}
    finally:
        await conn.close()


def first_sync(stack: Stack) -> None:
    """A sync run of the install, started now, to its end (RuntimeError if it failed)."""
    asked = datetime.now(UTC)
    stack.api.post(stack.base + "/sync/run").raise_for_status()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        last = stack.api.get(stack.base + "/sync/status").json()["last_run"]
        if last and last["finished_at"] and datetime.fromisoformat(last["finished_at"]) >= asked:
            if last["outcome"] != "succeeded":
                raise RuntimeError(f"the first sync failed: {last}")
            return
        time.sleep(0.1)
    raise TimeoutError("the first sync did not finish in 300 s")


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User and system CPU seconds of each process so far (postgres: with its backends, the
    ones alive now; the pools keep theirs)."""
    found = {}
    for name, pid in pids.items():
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            family = [process, *(process.children(recursive=True) if name == "postgres" else ())]
            total = 0.0
            for member in family:
                with contextlib.suppress(psutil.Error):
                    times = member.cpu_times()
                    total += times.user + times.system
            found[name] = total
    return found


def cpu_since(pids: dict[str, int], before: dict[str, float]) -> dict[str, float]:
    now = cpu_seconds(pids)
    return {name: now[name] - before.get(name, 0.0) for name in now}


def _postmaster(data_dir: Path) -> int:
    found = next(data_dir.rglob("postmaster.pid"))
    return int(found.read_text().split("\n", 1)[0])


@contextlib.contextmanager
def running(contacts: int, *, companies: int = 1000, env: dict[str, str] | None = None
            ) -> Iterator[Stack]:  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="seedos-bench-"))
    server = supervisor = crm = connector = None
    clients: list[httpx.Client] = []
    try:
        crm_key = secrets.token_urlsafe(24)
        crm = start("examples.demo_crm.app:create_app", factory=True, cwd=SDK, timeout=60,
                    env={"DEMO_CRM_DATA_DIR": str(tmp / "crm"), "DEMO_CRM_API_KEYS": crm_key},
                    log_path=tmp / "crm.log")  # fmt: skip
        connector = start("examples.crm_connector.connector:app", cwd=SDK,
                          env={"CRM_CONNECTOR_AUTH": "api_key", "SEEDOS_LOG_LEVEL": "WARNING"},
                          log_path=tmp / "connector.log")  # fmt: skip
        print(f"seeding {contacts} contacts ...", file=sys.stderr)
        seeding = time.perf_counter()
        with httpx.Client(base_url=crm.url, headers={"X-API-Key": crm_key}, timeout=1800) as c:
            c.post("/admin/seed", json={"contacts": contacts, "companies": companies}
                   ).raise_for_status()  # fmt: skip
        seed_s = time.perf_counter() - seeding
        server = embedded.start(tmp / "pg", cleanup_mode="delete")
        dsn = embedded.dsn(server)
        prepared = asyncio.run(_prepare(dsn, connector.url))

        ports = {spec.name: free_port() for spec in SERVICES}
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        keys = ServiceKeys.generate()
        service_env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDOS_")}
        service_env.update({
            "DATABASE_URL": dsn, "SEEDOS_ENV": "production", **keys.env(),
            "SEEDOS_INTERNAL_TOKEN_MAX_LIFETIME_SECONDS": "3600",
            "SEEDOS_CREDENTIAL_KEYS": KeyRing.generate().to_json(),
            "SEEDOS_LOG_LEVEL": "WARNING", "SEEDOS_LOG_FORMAT": "json",
            "SEEDOS_DATA_DIR": str(tmp / "data"),
            # production mode: the connectors here listen on loopback, listed on purpose
            "SEEDOS_ENDPOINT_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
            "SEEDOS_GATEWAY_CONNECTOR_SERVICE_URL": urls["connector_service"],
            "SEEDOS_MARKETPLACE_CONNECTOR_SERVICE_URL": urls["connector_service"],
            "SEEDOS_GATEWAY_MARKETPLACE_SERVICE_URL": urls["marketplace_service"],
            "SEEDOS_GATEWAY_UPSTREAM_TIMEOUT_SECONDS": "60", **(env or {}),
        })  # fmt: skip
        supervisor = Supervisor(service_env, log_path=tmp / "services.log")
        for spec in SERVICES:
            supervisor.start(spec, ports[spec.name])
        supervisor.wait_ready(urls, timeout=60)

        api = httpx.Client(base_url=urls["gateway"], timeout=120,
                           headers={"Authorization": f"Bearer {prepared['api_key']}"})  # fmt: skip
        clients.append(api)
        config = {"base_url": crm.url, "page_size": 1000}
        credentials = {"api_key": crm_key}
        r = api.post("/api/v1/integrations", json={
            "connector": "bench-crm", "config": config, "credentials": credentials})  # fmt: skip
        r.raise_for_status()
        iid = r.json()["id"]
        api.patch(f"/api/v1/integrations/{iid}", json={"sync_interval_seconds": 0}
                  ).raise_for_status()  # fmt: skip
        while api.get(f"/api/v1/integrations/{iid}").json()["status"] != "active":
            time.sleep(0.05)
        signer = keys.signer(ttl=3600)
        principal = Principal(tenant_id=prepared["tenant_id"], subject="apikey:bench",
                              role=Role.admin.value)  # fmt: skip
        token = signer.mint(principal, audience="connector_service")
        direct = httpx.Client(base_url=urls["connector_service"], timeout=60,
                              headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        clients.append(direct)
        yield Stack(
            dsn=dsn, urls=urls, crm=crm, connector=connector, crm_key=crm_key, api=api,
            api_key=prepared["api_key"], direct=direct, internal_token=token,
            integration_id=iid, config=config, credentials=credentials, tmp=tmp,
            pids={**{name: proc.pid for name, proc in supervisor.procs.items()},
                  "crm": crm.process.pid, "connector": connector.process.pid,
                  "postgres": _postmaster(tmp / "pg")}, seed_s=seed_s,
        )  # fmt: skip
    finally:
        for client in clients:
            client.close()
        if supervisor:
            supervisor.stop()
        for served in (connector, crm):
            if served:
                served.stop()
        if server:
            server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)  # the CRM's SQLite file: 250 MB at 1M contacts
