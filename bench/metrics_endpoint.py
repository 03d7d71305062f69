"""connector_service's ``GET /metrics`` once 1,000 installs have made calls.

Usage (no manual setup)::

    .venv/bin/python bench/metrics_endpoint.py [--installs 1000] [--services 100]
                                               [--requests 300] [--json out.json]

A throwaway embedded PostgreSQL is migrated; a connector built with seedos-sdk (the tests'
flaky connector, no auth) runs as a real process and is put in the catalog under ``--services``
names (each a catalog entry, so a Prometheus ``service`` label of its own); one tenant installs
it ``--installs`` times, spread over those names, through connector_service's API (each install
checks its connector: a call), and every install then runs an action twice, one in ten of them
refused (an error series). connector_service runs as a real process; ``--requests`` requests of
``/metrics`` and, in the same run as the reference, of ``/healthz``: p50 and p99 of each, and the
answer's size and sample count. Then the same with connector_service under ``uvicorn --workers
2`` and ``PROMETHEUS_MULTIPROC_DIR`` (every worker's values read from their files at each
scrape), after the same calls again. Target (issue 19): ``/metrics`` <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from machine import run_info  # noqa: E402  (bench/machine.py)
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from services import service_env  # noqa: E402  (bench/services.py)

from common import db, embedded, migrate  # noqa: E402
from common.internal_auth import Principal  # noqa: E402
from common.roles import Role  # noqa: E402
from marketplace_service.catalog.service import register_deployed  # noqa: E402
from seedos_cli.deployment_keys import ServiceKeys  # noqa: E402
from seedos_sdk.testing import free_port  # noqa: E402
from seedos_sdk.testing.process import Served, start, start_command  # noqa: E402

TARGET_MS = 50.0


async def catalog(dsn: str, connector_url: str, services: int) -> tuple[uuid.UUID, list[str]]:
    """The tenant, and the connector in the catalog under ``services`` names."""
    async with httpx.AsyncClient() as client:
        manifest = (await client.get(connector_url + "/manifest")).json()
    conn = await db.connect(dsn)
    try:
        await migrate.apply(conn)
        tenant = uuid.uuid4()
        await conn.execute("INSERT INTO tenants (id, slug, name) VALUES ($1, 'bench', 'Bench')",
                           tenant)  # fmt: skip
        slugs = []
        for i in range(services):
            slug = f"bench-{i:03d}-{secrets.token_hex(2)}"
            named = {**manifest, "name": slug, "display_name": slug}
            await register_deployed(conn, manifest=named, endpoint_url=connector_url,
                                    category="crm", vendor="bench")  # fmt: skip
            slugs.append(slug)
    finally:
        await conn.close()
    return tenant, slugs


async def install_all(url: str, token: str, slugs: list[str], installs: int) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        sem = asyncio.Semaphore(8)

        async def one(i: int) -> str:
            async with sem:
                r = await client.post("/api/v1/integrations", json={
                    "connector": slugs[i % len(slugs)], "connector_name": f"install {i}",
                    "config": {}, "credentials": {}})  # fmt: skip
                r.raise_for_status()
                return r.json()["id"]

        return await asyncio.gather(*(one(i) for i in range(installs)))


async def call_all(url: str, token: str, ids: list[str]) -> None:
    """Two actions per install, one in ten refused; a new connection per call, so that every
    worker takes some."""
    sem = asyncio.Semaphore(8)

    async def one(n: int, iid: str) -> None:
        async with sem, httpx.AsyncClient(base_url=url, timeout=60, headers={
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": uuid.uuid4().hex}) as client:  # fmt: skip
            body = {"input": {"tag": "bench", "refuse": n % 10 == 0}}
            r = await client.post(f"/api/v1/integrations/{iid}/actions/count", json=body)
            assert r.status_code < 500 or n % 10 == 0, r.text

    await asyncio.gather(*(one(n, iid) for n, iid in enumerate(ids * 2)))


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def measure(url: str, requests: int) -> dict[str, Any]:
    """``/metrics`` and ``/healthz`` alternately, each on a kept-alive connection."""
    out: dict[str, Any] = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(20):  # warm
            client.get("/metrics"), client.get("/healthz")
        times: dict[str, list[float]] = {"/metrics": [], "/healthz": []}
        for _ in range(requests):
            for path, samples in times.items():
                began = time.perf_counter()
                r = client.get(path)
                samples.append((time.perf_counter() - began) * 1000)
                r.raise_for_status()
        body = client.get("/metrics").text
    for path, samples in times.items():
        out[path] = {"p50_ms": statistics.median(samples), "p99_ms": pct(samples, 99)}
    out["bytes"] = len(body.encode())
    out["samples"] = sum(len(f.samples) for f in text_string_to_metric_families(body))
    out["service_labels"] = len(
        {s.labels["service"] for f in text_string_to_metric_families(body)
         for s in f.samples if s.name == "seedos_connector_call_duration_seconds_count"}
    )  # fmt: skip
    return out


def serve_connector_service(env: dict[str, str], tmp: Path, *, workers: int) -> Served:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "connector_service.app:create_app", "--factory",
           "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
           *(["--workers", str(workers)] if workers > 1 else [])]  # fmt: skip
    return start_command(cmd, port=port, env=env, cwd=ROOT, ready_path="/readyz", timeout=90,
                         log_path=tmp / f"connector_service-{workers}.log")  # fmt: skip


def report(name: str, f: dict[str, Any]) -> None:
    m, h = f["/metrics"], f["/healthz"]
    mark = "met" if m["p99_ms"] <= TARGET_MS else "MISSED"
    print(f"{name}: /metrics p50 {m['p50_ms']:.1f} ms, p99 {m['p99_ms']:.1f} ms (target <="
          f" {TARGET_MS:.0f} ms: {mark}); /healthz p50 {h['p50_ms']:.1f} ms, p99"
          f" {h['p99_ms']:.1f} ms; {f['bytes'] / 1024:.0f} KiB, {f['samples']} samples,"
          f" {f['service_labels']} service names")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--installs", type=int, default=1000)
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    info = run_info("metrics_endpoint.py")
    tmp = Path(tempfile.mkdtemp(prefix="seedos-bench-metrics-endpoint-"))
    server = connector = service = None
    figures: dict[str, Any] = {"installs": args.installs, "services": args.services}
    try:
        server = embedded.start(tmp / "pg", cleanup_mode="delete")
        dsn = embedded.dsn(server)
        connector = start("tests.connector_service.flaky_connector:app", cwd=ROOT,
                          env={"FLAKY_NAME": "bench"}, log_path=tmp / "connector.log")  # fmt: skip
        tenant, slugs = asyncio.run(catalog(dsn, connector.url, args.services))
        keys = ServiceKeys.generate()
        token = keys.signer(ttl=3600).mint(
            Principal(tenant_id=tenant, subject="apikey:bench", role=Role.admin.value),
            audience="connector_service",
        )
        env = service_env(dsn=dsn, urls={"connector_service": "", "marketplace_service": ""},
                          data_dir=tmp / "data", log_level="WARNING", keys=keys)  # fmt: skip
        for workers in (1, 2):
            run_env = dict(env)
            if workers > 1:
                (tmp / "multiproc").mkdir()
                run_env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / "multiproc")
            service = serve_connector_service(run_env, tmp, workers=workers)
            if workers == 1:
                print(f"installing {args.installs} ...", file=sys.stderr)
                ids = asyncio.run(install_all(service.url, token, slugs, args.installs))
            print(f"calling, {workers} worker(s) ...", file=sys.stderr)
            asyncio.run(call_all(service.url, token, ids))
            figures[f"workers_{workers}"] = measure(service.url, args.requests)
            service.stop()
            service = None
    finally:
        for served in (service, connector):
            if served is not None:
                served.stop()
        if server is not None:
            server.cleanup()
    report("1 process", figures["workers_1"])
    report("2 workers, multiprocess mode", figures["workers_2"])
    if args.json:
        args.json.write_text(json.dumps({**info, **figures}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
