"""Outbound webhooks: 1,000 events fanned out to 10 endpoints on loopback (10,000 signed POSTs)
drained by one connector_service process.

Usage (no manual setup)::

    .venv/bin/python bench/outbound.py [--events 1000] [--endpoints 10] [--json out.json]

A throwaway embedded PostgreSQL is migrated; one tenant gets ``--endpoints`` endpoints, each a
receiver on loopback (aiohttp, in a process of its own, answering 200 at once). connector_service
runs as a real process (egress to loopback listed, as an operator would). ``--events`` events
are published in one transaction, each to every endpoint; the time is from its commit until
every delivery is recorded as delivered (polled in the database every 20 ms).
Reference, in the same run: the same number of POSTs of the same bodies sent to the same
receivers by a plain httpx loop in this process (16 at a time, as the worker sends; no queue,
no signing, nothing recorded). Target (issue 19): <= 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import signal
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
from services import service_env  # noqa: E402  (bench/services.py)

from common import db, embedded, migrate  # noqa: E402
from common.crypto import KeyRing  # noqa: E402
from common.endpoints import EndpointPolicy, parse_networks  # noqa: E402
from connector_service.outbound import events, service  # noqa: E402
from seedos_cli.deployment_keys import ServiceKeys  # noqa: E402
from seedos_cli.supervisor import ServiceSpec, Supervisor  # noqa: E402
from seedos_sdk.testing import free_port  # noqa: E402

TARGET_SECONDS = 5.0


def _receivers(ports: list[int]) -> None:
    """Receivers on loopback answering 200 to every POST (run in a child process)."""
    from aiohttp import web

    async def ok(_request: web.Request) -> web.Response:
        await _request.read()
        return web.Response(text="ok")

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/hook", ok)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        for port in ports:
            await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    asyncio.run(serve())


async def setup(dsn: str, ring: KeyRing, urls: list[str]) -> uuid.UUID:
    conn = await db.connect(dsn)
    try:
        await migrate.apply(conn)
        tenant = await conn.fetchval(
            "INSERT INTO tenants (slug, name) VALUES ('bench', 'Bench') RETURNING id"
        )
        anything = EndpointPolicy(parse_networks("127.0.0.0/8"), name="bench")
        for url in urls:
            async with conn.transaction():
                await service.create(conn, ring, anything, tenant_id=tenant, actor="bench",
                                     url=url, event_types=[events.SYNC_FINISHED],
                                     description="bench")  # fmt: skip
        return tenant
    finally:
        await conn.close()


def _data(i: int) -> dict[str, Any]:
    return {"run_id": str(uuid.UUID(int=i)), "kind": "scheduled", "pulled": i, "deleted": 0,
            "pushed": 0, "service_name": "bench"}  # fmt: skip


async def fan_out(dsn: str, tenant: uuid.UUID, n: int, total: int) -> dict[str, float]:
    conn = await db.connect(dsn)
    try:
        began = time.perf_counter()
        async with conn.transaction():
            for i in range(n):
                await events.publish(conn, tenant_id=tenant, type=events.SYNC_FINISHED,
                                     data=_data(i))  # fmt: skip
        committed = time.perf_counter()
        while True:
            done = await conn.fetchval(
                "SELECT count(*) FROM outbound_deliveries WHERE state = 'delivered'"
            )
            if done >= total:
                break
            if time.perf_counter() - committed > 120:
                raise TimeoutError(f"only {done} of {total} delivered in 120 s")
            await asyncio.sleep(0.02)
        drained = time.perf_counter()
        failed = await conn.fetchval("SELECT count(*) FROM outbound_attempts WHERE NOT ok")
    finally:
        await conn.close()
    return {"publish_s": committed - began, "drain_s": drained - committed,
            "failed_attempts": failed}  # fmt: skip


async def reference(urls: list[str], n: int) -> float:
    bodies = [json.dumps({"type": events.SYNC_FINISHED, "data": _data(i)}).encode()
              for i in range(n)]  # fmt: skip
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        jobs = [(url, body) for body in bodies for url in urls]
        began = time.perf_counter()
        for start in range(0, len(jobs), 16):
            answers = await asyncio.gather(
                *(client.post(u, content=b) for u, b in jobs[start : start + 200])
            )
            assert all(a.status_code == 200 for a in answers)
        return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    info = run_info("outbound.py")
    tmp = Path(tempfile.mkdtemp(prefix="seedos-bench-outbound-"))
    ports = [free_port() for _ in range(args.endpoints)]
    urls = [f"http://127.0.0.1:{p}/hook" for p in ports]
    receivers = multiprocessing.get_context("spawn").Process(target=_receivers, args=(ports,),
                                                             daemon=True)  # fmt: skip
    receivers.start()
    server = supervisor = None
    try:
        server = embedded.start(tmp / "pg", cleanup_mode="delete")
        dsn = embedded.dsn(server)
        keys, ring = ServiceKeys.generate(), KeyRing.generate()
        tenant = asyncio.run(setup(dsn, ring, urls))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = service_env(dsn=dsn, urls={"connector_service": url, "marketplace_service": url},
                          data_dir=tmp / "data", log_level="WARNING", keys=keys,
                          SEEDOS_CREDENTIAL_KEYS=ring.to_json(),
                          SEEDOS_EGRESS_ALLOWED_NETWORKS="127.0.0.0/8")  # fmt: skip
        supervisor = Supervisor(env, log_path=tmp / "services.log")
        spec = ServiceSpec("connector_service", "connector_service.app:create_app")
        supervisor.start(spec, port)
        supervisor.wait_ready({spec.name: url}, timeout=60)
        total = args.events * args.endpoints
        ref = asyncio.run(reference(urls, args.events))
        figures = asyncio.run(fan_out(dsn, tenant, args.events, total))
        figures.update(events=args.events, endpoints=args.endpoints, posts=total,
                       deliveries_per_s=total / figures["drain_s"], reference_s=ref,
                       reference_posts_per_s=total / ref, target_s=TARGET_SECONDS)  # fmt: skip
    finally:
        if supervisor is not None:
            supervisor.stop()
        if server is not None:
            server.cleanup()
        receivers.kill()
    print(f"{total} deliveries ({args.events} events x {args.endpoints} endpoints):"
          f" published in {figures['publish_s']:.2f} s, drained in {figures['drain_s']:.2f} s"
          f" ({figures['deliveries_per_s']:.0f}/s; target <= {TARGET_SECONDS:g} s),"
          f" {figures['failed_attempts']} failed attempts")  # fmt: skip
    print(f"reference: the same {total} POSTs by a plain httpx loop: {ref:.2f} s"
          f" ({figures['reference_posts_per_s']:.0f}/s)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"run": info, **figures}, indent=2, default=str))
    return 0 if figures["drain_s"] <= TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
