"""The stack bench/webhooks.py runs against, and how it sends Stripe's deliveries.

An embedded PostgreSQL (migrated), localstripe, the SDK's generic connector serving the catalog's
definitions (the Stripe one in the catalog as ``bench-stripe``), the three services in production
mode on free loopback ports, and a tenant's admin API key; :func:`set_up_hooks` then installs
Stripe twice (``main``, against localstripe, with its webhook URL and signing secret;
``reference``, whose base URL is a closed port so its outbox never drains).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
from services import loopback_urls, service_env, start_all  # bench/services.py

from common import db, embedded, migrate
from common.roles import Role
from connector_service.webhooks.schemes import sign
from gateway.api_keys import service as api_keys
from gateway.tenants import service as tenants
from marketplace_service.catalog.definitions import DEFINITIONS
from marketplace_service.catalog.service import register_deployed
from seedos_cli.deployment_keys import ServiceKeys
from seedos_cli.supervisor import Supervisor
from seedos_sdk.testing import Served, start
from seedos_sdk.testing.localstripe import KEY, start_localstripe

SDK = Path(__file__).resolve().parents[1] / "sdk"
SECRET = "whsec_" + secrets.token_hex(16)


class Failed(Exception):
    """A delivery refused, lost or not applied: the run's figures do not count."""


@dataclass
class Bench:
    urls: dict[str, str]
    dsn: str
    stripe_url: str
    api_key: str
    main: str = ""  # the install deliveries go to
    reference: str = ""  # the install the reference PATCHes go to
    hook_url: str = ""
    pids: dict[str, int] = field(default_factory=dict)


# ------------------------------------------------------------------------------ the stack


async def prepare(dsn: str, connector_url: str) -> str:
    """Migrate, put the generic connector's Stripe definition in the catalog, make a tenant and
    its admin key (returned)."""
    conn = await db.connect(dsn)
    try:
        await migrate.apply(conn)
        async with httpx.AsyncClient() as client:
            manifest = (await client.get(connector_url + "/manifest")).json()
        manifest = {**manifest, "name": "bench-stripe", "display_name": "Stripe (bench)"}
        await register_deployed(conn, manifest=manifest, endpoint_url=connector_url,
                                category="payments", vendor="bench")  # fmt: skip
        async with conn.transaction():
            tenant = await tenants.create(conn, slug=f"bench-{secrets.token_hex(4)}",
                                          name="Bench", actor="system:bench")  # fmt: skip
            key = await api_keys.create(conn, tenant_id=tenant["id"], name="bench",
                                        role=Role.admin, created_by="bench")  # fmt: skip
        return key["key"]
    finally:
        await conn.close()


@contextlib.contextmanager
def running(tmp: Path) -> Iterator[Bench]:
    server = supervisor = None
    served: list[Served] = []
    try:
        stripe = start_localstripe(log_path=tmp / "localstripe.log")
        served.append(stripe)
        generic = start("seedos_sdk.declarative.server:app_factory", factory=True, cwd=SDK,
                        log_path=tmp / "generic.log",
                        env={"SEEDOS_DEFINITIONS": str(DEFINITIONS), "SEEDOS_LOG_LEVEL": "WARNING",
                             "SEEDOS_EGRESS_ALLOWED_NETWORKS": "127.0.0.0/8"})  # fmt: skip
        served.append(generic)
        listing = httpx.get(generic.url + "/definitions", timeout=10).json()["items"]
        connector_url = generic.url + next(d["path"] for d in listing if d["name"] == "stripe")
        print(f"starting embedded PostgreSQL in {tmp} ...", file=sys.stderr)
        server = embedded.start(tmp / "pg", cleanup_mode="delete")
        dsn = embedded.dsn(server)
        api_key = asyncio.run(prepare(dsn, connector_url))
        ports, urls = loopback_urls()
        env = service_env(dsn=dsn, urls=urls, data_dir=tmp / "data", log_level="WARNING",
                          keys=ServiceKeys.generate(),
                          SEEDOS_PUBLIC_URL=urls["gateway"])  # fmt: skip
        supervisor = Supervisor(env, log_path=tmp / "services.log")
        start_all(supervisor, ports, urls)
        postmaster = int(next((tmp / "pg").rglob("postmaster.pid")).read_text().split()[0])
        yield Bench(urls=urls, dsn=dsn, stripe_url=stripe.url, api_key=api_key,
                    pids={**{n: p.pid for n, p in supervisor.procs.items()},
                          "generic": generic.process.pid, "localstripe": stripe.process.pid,
                          "postgres": postmaster})  # fmt: skip
        if name := supervisor.first_exited():
            raise RuntimeError(f"{name} exited during the run; see {tmp / 'services.log'}")
    finally:
        if supervisor is not None:
            supervisor.stop()
        for s in reversed(served):
            with contextlib.suppress(Exception):
                s.stop()
        if server is not None:
            with contextlib.suppress(Exception):
                server.cleanup()


async def install(api: aiohttp.ClientSession, base_url: str) -> str:
    async with api.post("/api/v1/integrations", json={
        "connector": "bench-stripe", "config": {"base_url": base_url},
        "credentials": {"api_key": KEY}}) as r:  # fmt: skip
        iid = (await ok(r, 201))["id"]
    async with api.patch(f"/api/v1/integrations/{iid}", json={"sync_interval_seconds": 0}) as r:
        await ok(r)
    return iid


async def ok(r: aiohttp.ClientResponse, status: int = 200) -> Any:
    body = await r.read()
    if r.status != status:
        raise Failed(f"{r.method} {r.url.path}: {r.status} {body[:300]!r}")
    return orjson.loads(body) if body else None


async def set_up_hooks(b: Bench, api: aiohttp.ClientSession) -> None:
    b.main = await install(api, b.stripe_url)
    b.reference = await install(api, "http://127.0.0.1:9")  # closed: its outbox never drains
    async with api.post(f"/api/v1/integrations/{b.main}/webhook") as r:
        b.hook_url = (await ok(r))["url"]
    async with api.put(f"/api/v1/integrations/{b.main}/webhook/secret",
                       json={"secret": SECRET}) as r:  # fmt: skip
        await ok(r)


# ------------------------------------------------------------------------------ deliveries


def event(kind: str, obj: dict[str, Any], event_id: str | None = None) -> tuple[str, bytes]:
    """A Stripe event as Stripe sends it (its id, and the body)."""
    event_id = event_id or "evt_" + secrets.token_hex(12)
    return event_id, orjson.dumps({
        "id": event_id, "object": "event", "api_version": "2024-06-20",
        "created": int(time.time()), "type": kind, "livemode": False, "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None}, "data": {"object": obj},
    })  # fmt: skip


async def deliver(hooks: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json",
               **sign("stripe", SECRET, body, now=time.time())}  # fmt: skip
    async with hooks.post(url, data=body, headers=headers) as r:
        return r.status, orjson.loads(await r.read())


def stripe_client(b: Bench) -> httpx.Client:
    return httpx.Client(base_url=b.stripe_url, headers={"Authorization": f"Bearer {KEY}"},
                        timeout=30)  # fmt: skip
