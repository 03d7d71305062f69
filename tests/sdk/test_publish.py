"""seedos-connector publish against the real gateway: until the marketplace accepts publishing
(the marketplace issue), it must fail clearly and publish nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx

from common.roles import Role
from seedos_sdk.testing import serve
from tests.support import make_tenant

SDK = Path(__file__).resolve().parents[2] / "sdk"


async def test_publish_fails_clearly_and_publishes_nothing(suite, dsn):
    publisher = await make_tenant(dsn, role=Role.publisher)
    with serve("examples.crm_connector.connector:app", cwd=SDK) as connector:
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "seedos_sdk.cli.main", "publish", "--gateway", suite.gateway,
             "--api-key", publisher.key, "--endpoint", connector.url],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "does not accept publishing yet" in result.stderr
    assert "nothing was published" in result.stderr
    async with httpx.AsyncClient(base_url=suite.gateway, headers=publisher.headers) as client:
        r = await client.get("/api/v1/marketplace/connectors/demo-crm")
    assert r.status_code == 404  # the session database never had it


async def test_publish_reports_an_unreachable_connector(suite, dsn):
    publisher = await make_tenant(dsn, role=Role.publisher)
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "seedos_sdk.cli.main", "publish", "--gateway", suite.gateway,
         "--api-key", publisher.key, "--endpoint", "http://127.0.0.1:9"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1 and "cannot reach the connector" in result.stderr
