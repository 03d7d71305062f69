"""The connector stack the call and sync tests run against: the suite (with a quick breaker),
the demo CRM and the SDK's example connector in front of it, as real processes."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from marketplace_service.catalog.service import register_deployed
from seedos_sdk.testing.process import Served, start
from tests.conftest import ROOT, Suite, start_suite
from tests.support import connected, make_tenant

SDK_DIR = ROOT / "sdk"
THRESHOLD, OPEN_SECONDS = 3, 2


@dataclass
class Rig:
    suite: Suite
    crm: Served
    crm_connector: Served
    crm_key: str
    logs: Path


def start_rig(dsn: str, logs: Path, *, ports: dict[str, int] | None = None, **env: str) -> Rig:
    """``env``: more settings of the suite's services; ``ports``: theirs, when the test must
    know the gateway's address first (an OpenID provider's redirect URIs)."""
    key = secrets.token_urlsafe(24)
    crm = start(
        "examples.demo_crm.app:create_app", factory=True, cwd=SDK_DIR, log_path=logs / "crm.log",
        env={"DEMO_CRM_DATA_DIR": str(logs / "crm"), "DEMO_CRM_API_KEYS": key},
    )  # fmt: skip
    connector = start(
        "examples.crm_connector.connector:app", cwd=SDK_DIR, log_path=logs / "connector.log",
        env={"CRM_CONNECTOR_AUTH": "api_key"},
    )  # fmt: skip
    suite = start_suite(
        dsn, logs / "services.log", ports=ports,
        SEEDOS_CONNECTOR_BREAKER_FAILURE_THRESHOLD=str(THRESHOLD),
        SEEDOS_CONNECTOR_BREAKER_OPEN_SECONDS=str(OPEN_SECONDS),
        SEEDOS_CONNECTOR_CALL_TIMEOUT_SECONDS="3",
        SEEDOS_CONNECTOR_METRICS_FLUSH_SECONDS="0.2",
        **env,
    )  # fmt: skip
    return Rig(suite, crm, connector, key, logs)


@contextlib.contextmanager
def generic_connector(
    logs: Path, folder: Path = SDK_DIR / "examples" / "definitions"
) -> Iterator[Callable[[str], str]]:
    """The SDK's generic connector serving the definitions in ``folder`` (default: the SDK's
    examples), free to call APIs on loopback; yields ``url_of(name)``: the URL an install of
    that definition calls."""
    served = start("seedos_sdk.declarative.server:app_factory", factory=True, cwd=SDK_DIR,
                   env={"SEEDOS_DEFINITIONS": str(folder),
                        "SEEDOS_EGRESS_ALLOWED_NETWORKS": "127.0.0.0/8"},
                   log_path=logs / "generic.log")  # fmt: skip
    try:
        listing = httpx.get(served.url + "/definitions", timeout=10).json()
        assert not listing["refused"], listing
        paths = {d["name"]: d["path"] for d in listing["items"]}
        yield lambda name: served.url + paths[name]
    finally:
        served.stop()


def stop_rig(rig: Rig) -> None:
    rig.suite.supervisor.stop()
    rig.crm_connector.stop()
    rig.crm.stop()


async def register(dsn: str, base: str, *, endpoint: str | None = None) -> str:
    """Put a running connector in the catalog under a fresh slug; returns the slug."""
    async with httpx.AsyncClient() as client:
        manifest = (await client.get(base + "/manifest")).json()
    slug = f"{manifest['name']}-{secrets.token_hex(3)}"
    manifest = {**manifest, "name": slug, "display_name": slug}
    async with connected(dsn) as conn:
        await register_deployed(conn, manifest=manifest, endpoint_url=endpoint or base,
                                category="crm", vendor="tests")  # fmt: skip
    return slug


async def install_crm(client: httpx.AsyncClient, rig: Rig, slug: str, **config) -> str:
    """Install the connector ``slug`` for the rig's demo CRM, with its key, through the
    gateway ``client`` talks to (as its tenant); the new integration's id."""
    r = await client.post("/api/v1/integrations", json={
        "connector": slug, "config": {"base_url": rig.crm.url, **config},
        "credentials": {"api_key": rig.crm_key}})  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def bare_integration(database: Any, dsn: str) -> uuid.UUID:
    """An install row of a new tenant, with no connector behind it: for tests of the sync
    store, which needs nothing else."""
    t = await make_tenant(dsn)
    async with database.connection() as conn:
        return await conn.fetchval(
            "INSERT INTO integration_connectors (tenant_id, connector_name, service_name)"
            " VALUES ($1, 'store test', 'store-test') RETURNING id",
            t.tenant_id,
        )


async def wait_status(client: httpx.AsyncClient, iid: str, *wanted: str) -> dict:
    deadline = time.monotonic() + 15
    while True:
        item = (await client.get(f"/api/v1/integrations/{iid}")).json()
        if item["status"] in wanted or time.monotonic() > deadline:
            return item
        await asyncio.sleep(0.1)


async def fetch(dsn: str, sql: str, *args) -> list[asyncpg.Record]:
    """``sql``'s rows, on a connection of its own."""
    async with connected(dsn) as conn:
        return await conn.fetch(sql, *args)


async def get_url(url: str, *, text: bool = False):
    async with httpx.AsyncClient() as client:
        r = await client.get(url)
    return r.text if text else r.json()


def start_flaky(name: str, logs: Path, port: int | None = None) -> Served:
    return start("tests.connector_service.flaky_connector:app", cwd=ROOT, port=port,
                 env={"FLAKY_NAME": name}, log_path=logs / f"{name}.log")  # fmt: skip
