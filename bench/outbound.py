"""Outbound webhooks: 1,000 events fanned out to 10 endpoints on loopback (10,000 signed POSTs)
drained by one connector_service process.

Usage (no manual setup)::

    .venv/bin/python bench/outbound.py [--events 1000] [--endpoints 10] [--json out.json]

A throwaway embedded PostgreSQL is migrated; one tenant gets ``--endpoints`` endpoints, each a
receiver on loopback (a plain asyncio protocol on uvloop with httptools' parser, all in one
process of its own, answering 200 at once: it used ~0.15 CPU-seconds for the 10,000 POSTs, so
it is not what bounds the figures). connector_service runs as a real process (egress to
loopback listed, as an operator would; every other setting its default, the 0.5 s poll
included). ``--events`` events are published in one transaction, each to every endpoint; the
time is from its commit until every delivery is recorded as delivered (polled in the database
every 20 ms). Printed beside it: when the first delivery was recorded (mostly the poll
interval), the CPU seconds each process used during the drain, and the load average.
Reference, in the same run: the same number of POSTs of the same bodies with Standard Webhooks
headers signed per endpoint, sent to the same receivers by a plain aiohttp client in this
process, as many in flight as the worker sends (128 in all, 16 per endpoint); no queue, nothing
recorded. Target (issue 19): <= 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import psutil  # noqa: E402
from machine import cpu_seconds, run_info  # noqa: E402  (bench/machine.py)
from services import service_env  # noqa: E402  (bench/services.py)

from common import db, embedded, migrate  # noqa: E402
from common.crypto import KeyRing  # noqa: E402
from common.endpoints import EndpointPolicy, parse_networks  # noqa: E402
from connector_service.outbound import events, service, worker  # noqa: E402
from seedos_cli.deployment_keys import ServiceKeys  # noqa: E402
from seedos_cli.supervisor import ServiceSpec, Supervisor  # noqa: E402
from seedos_sdk.testing import free_port  # noqa: E402

TARGET_SECONDS = 5.0


def _receivers(ports: list[int]) -> None:
    """Receivers on loopback answering 200 to every POST (run in a child process): a plain
    asyncio protocol on uvloop with httptools' HTTP/1.1 parser, keep-alive, the body read and
    dropped. Measured on this machine: ~1.8x the POSTs per second of an aiohttp.web app, so the
    receiver is not what bounds the figures."""
    import httptools
    import uvloop

    answer = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"

    class Receiver(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)

        def data_received(self, data: bytes) -> None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                self.transport.close()

        def on_message_complete(self) -> None:
            self.transport.write(answer)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for port in ports:
            await loop.create_server(Receiver, "127.0.0.1", port)
        await asyncio.Event().wait()

    uvloop.run(serve())


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


def _cpu(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds used so far by each group of processes (a postgres backend that exited since
    is not counted)."""
    out = {}
    for name, group in pids.items():
        total = 0.0
        for pid in group:
            with contextlib.suppress(OSError):
                total += cpu_seconds(pid)
        out[name] = total
    return out


async def fan_out(
    dsn: str, tenant: uuid.UUID, n: int, total: int, pids: Callable[[], dict[str, list[int]]]
) -> dict[str, Any]:
    conn = await db.connect(dsn)
    try:
        began = time.perf_counter()
        async with conn.transaction():
            for i in range(n):
                await events.publish(conn, tenant_id=tenant, type=events.SYNC_FINISHED,
                                     data=_data(i))  # fmt: skip
        committed = time.perf_counter()
        cpu_before, first = _cpu(pids()), None
        while True:
            done = await conn.fetchval(
                "SELECT count(*) FROM outbound_deliveries WHERE state = 'delivered'"
            )
            if done and first is None:
                first = time.perf_counter()
            if done >= total:
                break
            if time.perf_counter() - committed > 120:
                raise TimeoutError(f"only {done} of {total} delivered in 120 s")
            await asyncio.sleep(0.02)
        drained = time.perf_counter()
        cpu_after = _cpu(pids())
        failed = await conn.fetchval("SELECT count(*) FROM outbound_attempts WHERE NOT ok")
    finally:
        await conn.close()
    cpu = {k: round(cpu_after[k] - cpu_before.get(k, 0.0), 2) for k in cpu_after}
    return {"publish_s": committed - began, "drain_s": drained - committed,
            "first_delivered_s": (first or drained) - committed, "failed_attempts": failed,
            "cpu_s_during_drain": cpu}  # fmt: skip


async def reference(urls: list[str], n: int) -> float:
    """The same POSTs (bodies, Standard Webhooks headers signed per endpoint) by a plain
    aiohttp client, as many in flight as the worker sends (in all and per endpoint)."""
    import aiohttp
    from standardwebhooks import Webhook

    signers = [Webhook("whsec_" + base64.b64encode(uuid.uuid4().bytes * 2).decode()) for _ in urls]
    bodies = [orjson.dumps({"type": events.SYNC_FINISHED, "timestamp": "2026-12-23T09:00:00",
                            "data": _data(i)}) for i in range(n)]  # fmt: skip
    overall = asyncio.Semaphore(worker.MAX_IN_FLIGHT)
    per = [asyncio.Semaphore(worker.PER_ENDPOINT) for _ in urls]
    connector = aiohttp.TCPConnector(limit=worker.MAX_IN_FLIGHT, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(k: int, i: int) -> None:
            async with per[k], overall:
                msg_id, now = str(uuid.UUID(int=i)), datetime.now(UTC)
                headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
                           "webhook-signature": signers[k].sign(msg_id, now, bodies[i]),
                           "content-type": "application/json"}  # fmt: skip
                async with session.post(urls[k], data=bodies[i], headers=headers) as resp:
                    await resp.read()
                    assert resp.status == 200

        began = time.perf_counter()
        await asyncio.gather(*(post(k, i) for i in range(n) for k in range(len(urls))))
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
        ref_pids = {"bench": [os.getpid()], "receivers": [receivers.pid]}
        before = _cpu(ref_pids)
        ref = asyncio.run(reference(urls, args.events))
        ref_cpu = {k: round(v - before[k], 2) for k, v in _cpu(ref_pids).items()}
        postmaster = psutil.Process(server.get_pid())

        def pids() -> dict[str, list[int]]:
            return {"connector_service": [supervisor.procs[spec.name].pid],
                    "postgres": [postmaster.pid, *(c.pid for c in postmaster.children())],
                    "receivers": [receivers.pid], "bench": [os.getpid()]}  # fmt: skip

        load_before = os.getloadavg()
        figures = asyncio.run(fan_out(dsn, tenant, args.events, total, pids))
        figures["load_avg_1m"] = [load_before[0], os.getloadavg()[0]]
        figures.update(events=args.events, endpoints=args.endpoints, posts=total,
                       deliveries_per_s=total / figures["drain_s"], reference_s=ref,
                       reference_posts_per_s=total / ref, target_s=TARGET_SECONDS,
                       reference_cpu_s=ref_cpu)  # fmt: skip
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
    print(f"reference: the same {total} POSTs by a plain aiohttp client: {ref:.2f} s"
          f" ({figures['reference_posts_per_s']:.0f}/s; CPU seconds: {ref_cpu})")  # fmt: skip
    print(f"first delivery recorded {figures['first_delivered_s']:.2f} s after the commit;"
          f" CPU seconds during the drain: {figures['cpu_s_during_drain']};"
          f" 1-minute load average before/after: {figures['load_avg_1m']}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"run": info, **figures}, indent=2, default=str))
    return 0 if figures["drain_s"] <= TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
