"""A real Prometheus (Debian's, unpacked by the Makefile) scrapes the running suite, the demo
CRM's connector and nothing else, every second, with prometheus/rules/ loaded, while traffic goes
through: a sync, a change pushed after retries, a change dead-lettered, a failing action, a
failed sync run. Then every selector the dashboards and the rules use (tests/monitoring/
selectors.py), and every recorded series, has at least one series in its HTTP API."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml

from common.roles import Role
from tests.connector_service.rig import Rig, install_crm, register, start_rig, stop_rig, wait_status
from tests.monitoring.selectors import all_selectors
from tests.monitoring.tools import PROMETHEUS_CONFIG_DIR, binary
from tests.support import free_port, make_tenant, metric_total

DEADLINE = 60  # seconds for every selector to resolve once the traffic is through


@pytest.fixture(scope="module")
def rig(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    running = start_rig(dsn, tmp_path_factory.mktemp("monitoring-rig"),
                        SEEDOS_CONNECTOR_MONITORING_GAUGE_SECONDS="1")  # fmt: skip
    try:
        yield running
    finally:
        stop_rig(running)


def scrape_config(rig: Rig, folder: Path) -> Path:
    ports = rig.suite.ports
    jobs = {"gateway": ports["gateway"], "connector-service": ports["connector_service"],
            "marketplace-service": ports["marketplace_service"],
            "connectors": int(rig.crm_connector.url.rsplit(":", 1)[1])}  # fmt: skip
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in sorted((PROMETHEUS_CONFIG_DIR / "rules").glob("*.yml"))],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for job, port in jobs.items()
        ],
    }
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def prometheus(rig: Rig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus on a free loopback port; stopped with its process group."""
    folder = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    log = open(folder / "prometheus.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(binary("prometheus")), f"--config.file={scrape_config(rig, folder)}",
         f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--storage.tsdb.retention.time=1h"],
        stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (folder / "prometheus.log").read_text()
            try:
                if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "Prometheus not ready after 30 s"
            time.sleep(0.1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
async def crm_world(
    rig: Rig, dsn: str
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, str]]:
    """An editor's client on the gateway, a client on the demo CRM (seeded), an install."""
    slug = await register(dsn, rig.crm_connector.url)
    tenant = await make_tenant(dsn, role=Role.editor)
    crm = httpx.AsyncClient(base_url=rig.crm.url, headers={"X-API-Key": rig.crm_key}, timeout=30)
    await crm.post("/admin/reset")
    assert (await crm.post("/admin/seed", json={"contacts": 12, "companies": 2})).status_code < 300
    client = httpx.AsyncClient(base_url=rig.suite.gateway, headers=tenant.headers, timeout=30)
    iid = await install_crm(client, rig, slug)  # scheduled (every 300 s): it has a sync lag
    assert (await wait_status(client, iid, "active"))["status"] == "active"
    try:
        yield client, crm, f"/api/v1/integrations/{iid}"
    finally:
        await crm.delete("/admin/faults")
        await client.aclose()
        await crm.aclose()


async def fault(crm: httpx.AsyncClient, **spec) -> None:  # type: ignore[no-untyped-def]
    r = await crm.post("/admin/faults", json=spec)
    assert r.status_code == 201, r.text


async def sync_run(client: httpx.AsyncClient, base: str) -> dict:
    """A run (started now, or the one running) to its end: the last run."""
    asked = datetime.now(UTC)
    r = await client.post(base + "/sync/run")
    assert r.status_code in (202, 409), r.text
    deadline = time.monotonic() + 30
    while True:
        last = (await client.get(base + "/sync/status")).json()["last_run"]
        if (last and last["outcome"] != "running" and last["finished_at"]
                and datetime.fromisoformat(last["finished_at"]) >= asked):  # fmt: skip
            return last
        assert time.monotonic() < deadline, last
        await asyncio.sleep(0.2)


async def until(check, within: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not (result := await check()):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    return result


async def traffic(client: httpx.AsyncClient, crm: httpx.AsyncClient, base: str) -> None:
    assert (await sync_run(client, base))["outcome"] == "succeeded"
    keys = sorted(c["id"] for c in (await crm.get("/v1/contacts")).json()["results"])
    # a change pushed after two refusals to retry (pending, retried, pushed) and one refused
    # for good (dead-lettered)
    await fault(crm, paths=[f"/v1/contacts/{keys[0]}"], methods=["PUT"], status=503, count=2)
    await fault(crm, paths=[f"/v1/contacts/{keys[1]}"], methods=["PUT"], status=400, count=1)
    for key in keys[:2]:
        r = await client.patch(f"{base}/records/contacts/{key}", json={"phone": "+1 555"})
        assert r.status_code == 200, r.text

    async def drained() -> bool:
        status = (await client.get(base + "/sync/status")).json()
        return status["outbox_depth"] == 0 and status["dead_letters"] == 1

    await until(drained)
    # an action the CRM keeps failing: retried, then a 5xx for the caller
    await fault(crm, paths=["/v1/contacts"], methods=["POST"], status=503, count=10)
    r = await client.post(base + "/actions/create_contact", json={"input": {"email": "a@b.co"}},
                          headers={"Idempotency-Key": secrets.token_hex(8)})  # fmt: skip
    assert r.status_code >= 500, r.text
    await crm.delete("/admin/faults")
    # a sync run the CRM refuses
    await fault(crm, paths=["/v1/contacts"], methods=["GET"], status=400, count=20)
    assert (await sync_run(client, base))["outcome"] == "failed"
    await crm.delete("/admin/faults")


async def missing_selectors(prometheus: str, selectors: set[str]) -> set[str]:
    missing = set()
    async with httpx.AsyncClient(base_url=prometheus, timeout=10) as api:
        for selector in sorted(selectors):
            r = await api.get("/api/v1/series", params={"match[]": selector})
            assert r.status_code == 200, f"{selector}: {r.text}"
            if not r.json()["data"]:
                missing.add(selector)
    return missing


async def pushes_here(
    client: httpx.AsyncClient, crm: httpx.AsyncClient, base: str, connector_service: str
) -> None:
    """Every connector_service process pushes every install's outbox, and the session's suite
    shares this database: the pushes above may have gone through another process than the one
    Prometheus scrapes. Edit again until one is pushed from this one (its counter has a series)."""
    keys = sorted(c["id"] for c in (await crm.get("/v1/contacts")).json()["results"])
    for attempt in range(10):
        text = (await client.get(connector_service + "/metrics")).text
        if metric_total(text, "seedos_sync_records_pushed_total") > 0:
            return
        r = await client.patch(f"{base}/records/contacts/{keys[2]}",
                               json={"phone": f"+1 555 {attempt}"})  # fmt: skip
        assert r.status_code == 200, r.text
        await until(lambda: _outbox_empty(client, base))
    raise AssertionError("no push went through the scraped connector_service in 10 edits")


async def _outbox_empty(client: httpx.AsyncClient, base: str) -> bool:
    return (await client.get(base + "/sync/status")).json()["outbox_depth"] == 0


async def test_every_selector_of_the_dashboards_and_rules_has_series(prometheus, crm_world, rig):
    client, crm, base = crm_world
    await traffic(client, crm, base)
    await pushes_here(client, crm, base, rig.suite.connector_service)
    selectors = all_selectors()
    assert len(selectors) > 40
    deadline = time.monotonic() + DEADLINE
    missing = selectors
    while missing and time.monotonic() < deadline:
        missing = await missing_selectors(prometheus, missing)
        if missing:
            await asyncio.sleep(1)
    assert not missing, f"no series for {len(missing)} selectors: {sorted(missing)}"
    # and the recorded rates carry traffic: a rate needs two samples that differ, and the
    # traffic above may all lie before the first scrape, so some comes now, while it scrapes
    query = {"query": "sum(service:seedos_http_requests:rate5m)"}
    async with httpx.AsyncClient(base_url=prometheus, timeout=10) as api:
        while True:
            assert (await client.get(base)).status_code == 200
            result = (await api.get("/api/v1/query", params=query)).json()["data"]["result"]
            if result and float(result[0]["value"][1]) > 0:
                break
            assert time.monotonic() < deadline, f"the recorded request rate stayed {result}"
            await asyncio.sleep(0.5)
