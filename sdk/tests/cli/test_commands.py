"""seedos-connector test and dev, run as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from seedos_sdk.testing import free_port, serve

SDK = Path(__file__).resolve().parents[2]
KEY = "cli-crm-key"


def cli(*args: str, cwd: Path = SDK) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seedos_sdk.cli.main", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def crm_url(tmp_path_factory):
    env = {"DEMO_CRM_DATA_DIR": str(tmp_path_factory.mktemp("crm")), "DEMO_CRM_API_KEYS": KEY}
    with serve("examples.demo_crm.app:create_app", factory=True, cwd=SDK, env=env) as served:
        yield served.url


def test_test_command_passes_on_the_example_and_fails_with_wrong_credentials(crm_url):
    samples = json.dumps({"contacts": [{"email": "cli@example.com"}],
                          "companies": [{"name": "CLI Ltd"}]})  # fmt: skip
    app = [
        "--app",
        "examples.crm_connector.connector:app",
        "--config",
        json.dumps({"base_url": crm_url}),
    ]
    ok = cli(
        "test", *app, "--credentials", json.dumps({"api_key": KEY}), "--write-samples", samples
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "6 passed, 0 failed" in ok.stdout
    wrong = json.dumps({"api_key": "wrong"})
    bad = cli("test", *app, "--credentials", wrong, "--write-samples", samples)
    assert bad.returncode == 1
    assert "FAIL  connection" in bad.stdout and "401" in bad.stdout


def test_test_command_needs_exactly_one_target():
    r = cli("test")
    assert r.returncode == 2 and "exactly one of --app, --url or --definition" in r.stderr
    r = cli("test", "--url", "http://127.0.0.1:9", "--config", "[1]")
    assert r.returncode == 2 and "JSON object" in r.stderr


def test_dev_serves_the_connector_and_stops():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "seedos_sdk.cli.main", "dev", "examples.crm_connector.connector:app",
         "--port", str(port)],
        cwd=SDK, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/manifest")
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "dev did not serve"
            time.sleep(0.1)
        assert r.json()["name"] == "demo-crm"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
