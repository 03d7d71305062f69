"""seedos-connector publish against the real gateway and marketplace: the example connector's
manifest as a new entry, then a newer version, then an older one (409).

On a suite of its own, over a fresh database with the real catalog: the session's catalog holds
copies of the example connector that other tests registered under its display name."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from common import db, migrate
from common.roles import Role
from seedos_cli import demo
from seedos_sdk.cli import main as cli
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


async def _cli(*args: str) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "seedos_sdk.cli.main", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


async def publish(suite, key: str, endpoint: str, *extra: str) -> subprocess.CompletedProcess:
    return await _cli("publish", "--gateway", suite.gateway, "--api-key", key,
                      "--endpoint", endpoint, *extra)  # fmt: skip


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

        withdrawn = await _cli("withdraw", "demo-crm", "1.0.0", "--reason", "use 1.1.0",
                               "--gateway", suite.gateway, "--api-key", publisher.key)  # fmt: skip
        assert withdrawn.returncode == 0, withdrawn.stdout + withdrawn.stderr
        assert "withdrew demo-crm 1.0.0 (0 install(s)" in withdrawn.stdout
        again = await _cli("withdraw", "demo-crm", "1.0.0", "--reason", "again",
                           "--gateway", suite.gateway, "--api-key", publisher.key)  # fmt: skip
        assert again.returncode == 1 and "withdrawing failed (409)" in again.stderr
        versions = (await client.get("/api/v1/marketplace/connectors/demo-crm/versions")).json()
        assert [(v["version"], v["withdrawn_reason"]) for v in versions["items"]] == [
            ("1.1.0", None), ("1.0.0", "use 1.1.0")]  # fmt: skip


async def test_publish_reports_an_unreachable_connector(suite, dsn):
    publisher = await make_tenant(dsn, role=Role.publisher)
    result = await publish(suite, publisher.key, "http://127.0.0.1:9")
    assert result.returncode == 1 and "cannot reach the connector" in result.stderr


class _Odd(BaseHTTPRequestHandler):
    """Stands in for a connector and a gateway that answer what ``answers`` says."""

    answers: dict[str, tuple[int, str, str, dict[str, str]]] = {}

    def _answer(self) -> None:
        status, ctype, body, headers = self.answers[self.command]
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body.encode())))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    ("get", "post", "says"),
    [
        ((200, "text/html", "<html>hi</html>", {}), None, "not a JSON object"),
        ((200, "application/json", "[1, 2]", {}), None, "not a JSON object"),
        ((200, "application/json", "{}", {}),
         (301, "text/html", "", {"Location": "https://seedos.example/api"}),
         "redirecting to https://seedos.example/api"),
        ((200, "application/json", "{}", {}), (502, "text/html", "<h1>Bad gateway</h1>", {}),
         "publishing failed (502): <h1>Bad gateway</h1>"),
        ((200, "application/json", "{}", {}), (422, "application/json", "[\"odd\"]", {}),
         "publishing failed (422)"),
        ((200, "application/json", "{}", {}), (201, "text/plain", "ok", {}),
         "not a catalog entry"),
        ((200, "application/json", "{}", {}), (200, "application/json", "{\"ok\": true}", {}),
         "not a catalog entry"),
    ],
)  # fmt: skip
def test_publish_explains_odd_answers_without_a_traceback(get, post, says):
    _Odd.answers = {"GET": get, "POST": post or (500, "text/plain", "unused", {})}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Odd)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = CliRunner().invoke(
            cli.app, ["publish", "--gateway", url, "--api-key", "k", "--endpoint", url]
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert says in result.output, result.output
