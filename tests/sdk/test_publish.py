"""seedos-connector publish against the real gateway and marketplace: the example connector's
manifest as a new entry, then a newer version, then an older one (409).

On a suite of its own, over a fresh database with the real catalog: the session's catalog holds
copies of the example connector that other tests registered under its display name."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from common import db, migrate
from common.roles import Role
from seedos_cli import demo
from seedos_sdk.testing import serve
from tests.conftest import Suite, start_suite
from tests.support import create_database, drop_database, make_tenant

SDK = Path(__file__).resolve().parents[2] / "sdk"
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
async def fresh(admin_dsn: str, tmp_path_factory: pytest.TempPathFactory):
    """A suite over a database of its own: (suite, dsn)."""
    dsn = await create_database(admin_dsn, prefix="seedos_publish")
    conn = await db.connect(dsn)
    try:
        await migrate.apply(conn)
        await demo.seed(conn)
    finally:
        await conn.close()
    log = tmp_path_factory.mktemp("publish") / "services.log"
    running: Suite = await asyncio.to_thread(start_suite, dsn, log)
    try:
        yield running, dsn
    finally:
        running.supervisor.stop()
        await drop_database(admin_dsn, dsn)


@contextmanager
def example_connector(version: str):
    env = {"CONNECTOR_VERSION": version, "PYTHONPATH": f"{SDK}:{HERE}"}
    with serve("versioned_connector:app", cwd=SDK, env=env) as served:
        yield served


async def publish(suite, key: str, endpoint: str, *extra: str) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "seedos_sdk.cli.main", "publish", "--gateway", suite.gateway,
         "--api-key", key, "--endpoint", endpoint, *extra],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


async def test_publish_new_then_newer_then_older(fresh):
    suite, dsn = fresh
    publisher = await make_tenant(dsn, role=Role.publisher)
    other = await make_tenant(dsn, role=Role.publisher)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=publisher.headers) as client:
        assert (await client.get("/api/v1/marketplace/connectors/demo-crm")).status_code == 404

        with example_connector("1.0.0") as connector:
            first = await publish(suite, publisher.key, connector.url, "--category", "crm",
                                  "--vendor", "SEED-OS examples")  # fmt: skip
        assert first.returncode == 0, first.stdout + first.stderr
        assert "published demo-crm 1.0.0 (a new entry" in first.stdout
        entry = (await client.get("/api/v1/marketplace/connectors/demo-crm")).json()
        assert entry["version"] == "1.0.0" and entry["deployed"] and entry["published_by_you"]
        assert entry["category"] == "crm" and entry["vendor"] == "SEED-OS examples"
        assert entry["config_schema"]["properties"]["base_url"]
        assert entry["manifest"]["streams"]  # the whole contract manifest, as served
        found = (await client.get("/api/v1/marketplace/connectors", params={"q": "demo"})).json()
        assert "demo-crm" in [e["slug"] for e in found["items"]]

        with example_connector("1.1.0") as connector:
            newer = await publish(suite, publisher.key, connector.url)
            same = await publish(suite, publisher.key, connector.url)
            taken = await publish(suite, other.key, connector.url)
        assert newer.returncode == 0, newer.stdout + newer.stderr
        assert "published demo-crm 1.1.0 (a new version" in newer.stdout
        assert same.returncode == 1 and "(409)" in same.stderr
        assert taken.returncode == 1 and "(403)" in taken.stderr

        with example_connector("1.0.5") as connector:
            older = await publish(suite, publisher.key, connector.url)
        assert older.returncode == 1 and "(409)" in older.stderr and "1.1.0" in older.stderr

        entry = (await client.get("/api/v1/marketplace/connectors/demo-crm")).json()
        assert entry["version"] == "1.1.0"  # neither refusal changed anything
        assert entry["category"] == "crm"  # kept: the newer version did not name one


async def test_publish_reports_an_unreachable_connector(suite, dsn):
    publisher = await make_tenant(dsn, role=Role.publisher)
    result = await publish(suite, publisher.key, "http://127.0.0.1:9")
    assert result.returncode == 1 and "cannot reach the connector" in result.stderr
