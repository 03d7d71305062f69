"""Several uvicorn workers behind one port: with PROMETHEUS_MULTIPROC_DIR set, whichever worker
answers /metrics serves every worker's counts added up, for a service (connector_service, through
common/observability.py) and for an SDK connector (seedos_sdk/server.py)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest, multiprocess

from seedos_sdk.testing.process import Served, free_port, start_command
from tests.conftest import ROOT, suite_env
from tests.support import metric_total

REQUESTS = 60
ROUNDS = 5


def uvicorn_workers(
    app: str, *, cwd: Path, env: dict[str, str], log: Path, factory: bool = True
) -> Served:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", app, *(["--factory"] if factory else []),
           "--workers", "2", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]  # fmt: skip
    return start_command(cmd, port=port, env=env, cwd=cwd, timeout=60, log_path=log)


def per_worker(folder: Path, sample: str, **labels: str) -> dict[str, float]:
    """``sample``'s total in each worker's own files (a copy of them alone, read by the same
    collector): which workers served what."""
    pids = {p.stem.rsplit("_", 1)[-1] for p in folder.glob("*.db")}
    totals = {}
    for pid in pids:
        alone = folder.parent / f"worker-{pid}"
        shutil.rmtree(alone, ignore_errors=True)
        alone.mkdir()
        for f in folder.glob(f"*_{pid}.db"):
            shutil.copy(f, alone / f.name)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(alone))
        totals[pid] = metric_total(generate_latest(registry).decode(), sample, **labels)
    return totals


def spread_and_scrape(
    url: str, request: tuple[str, str, int], folder: Path, sample: str, **labels: str
) -> None:
    method, path, status = request
    before = per_worker(folder, sample, **labels)  # the readiness probes
    # A connection per request, so the kernel hands them to both workers. On a loaded machine
    # one worker may take a whole round: more rounds, until both have served some.
    sent = 0
    for _ in range(ROUNDS):
        for _ in range(REQUESTS):
            r = httpx.request(method, url + path, json={} if method == "POST" else None,
                              timeout=10)  # fmt: skip
            assert r.status_code == status, r.text
        sent += REQUESTS
        after = per_worker(folder, sample, **labels)
        shares = {pid: n - before.get(pid, 0) for pid, n in after.items()}
        if sum(1 for n in shares.values() if n) == 2:
            break
    assert sum(shares.values()) == sent
    assert sum(1 for n in shares.values() if n) == 2, f"one worker took every request: {shares}"
    total = sum(after.values())
    for _ in range(6):  # either worker answers, and each answer holds both workers' counts
        text = httpx.get(url + "/metrics", timeout=10).text
        assert metric_total(text, sample, **labels) == total


@pytest.fixture
def multiproc_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "prometheus-multiproc"
    folder.mkdir()
    yield folder


def test_a_service_under_two_workers_serves_their_sum(dsn, tmp_path, multiproc_dir):
    env = suite_env(dsn, None, {"connector_service": 0, "marketplace_service": 0},
                    PROMETHEUS_MULTIPROC_DIR=str(multiproc_dir))  # fmt: skip
    served = uvicorn_workers("connector_service.app:create_app", cwd=ROOT, env=env,
                             log=tmp_path / "service.log")  # fmt: skip
    try:
        # /readyz, not /healthz: the readiness probes' /healthz calls can still be counted
        # after the service answered ready (a probe the client gave up on; CI once counted 61)
        spread_and_scrape(served.url, ("GET", "/readyz", 200), multiproc_dir, "seedos_http_requests_total",
                          route="/readyz", service="connector_service")  # fmt: skip
    finally:
        served.stop()


def test_an_sdk_connector_under_two_workers_serves_their_sum(tmp_path, multiproc_dir):
    env = {"CRM_CONNECTOR_AUTH": "api_key", "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)}
    served = uvicorn_workers("examples.crm_connector.connector:app", cwd=ROOT / "sdk", env=env,
                             log=tmp_path / "connector.log", factory=False)  # fmt: skip
    try:
        # a check without its envelope: refused at once (no API called), and timed all the same
        spread_and_scrape(served.url, ("POST", "/check", 422), multiproc_dir,
                          "seedos_connector_request_duration_seconds_count", operation="check")  # fmt: skip
    finally:
        served.stop()
