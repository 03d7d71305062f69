"""An install's call history (``GET /api/v1/integrations/{id}/metrics``): latency at 7 days and
1-hour steps with 1,000,000 rows in ``connector_metrics``.

Usage (no manual setup)::

    .venv/bin/python bench/install_metrics.py [--rows 1000000] [--installs 100]
                                              [--requests 400] [--json out.json]

A throwaway embedded PostgreSQL is migrated; one tenant gets ``--installs`` installs and
``--rows`` rows are written over the last 7 days the way the recorder writes them (one
``latency_ms`` row per call, one ``error`` row for 2% of them), spread evenly over the installs,
except one *busy* install that has a tenth of all rows. connector_service runs as a real
process; ``--requests`` requests for 7 days at 1-hour steps (168 points) go straight to it with
a minted internal token, to installs chosen at random, then as many for the busy one: p50 and
p99 of each. The rows are rolled up first, as the rollup job would have (the endpoint reads the
hour rollups since issue 19; bench/metrics_history.py measures 30 days). Reference, in the same
run: the raw-row SQL the endpoint ran before the rollups, on one connection from this process.
Target (from issue 15): <= 20 ms p99.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
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

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from machine import run_info  # noqa: E402  (bench/machine.py)
from services import service_env  # noqa: E402  (bench/services.py)

from common import db, embedded, migrate  # noqa: E402
from common.internal_auth import Principal  # noqa: E402
from common.roles import Role  # noqa: E402
from connector_service.metrics import rollup  # noqa: E402
from seedos_cli.deployment_keys import ServiceKeys  # noqa: E402
from seedos_cli.supervisor import ServiceSpec, Supervisor  # noqa: E402
from seedos_sdk.testing import free_port  # noqa: E402

TARGET_P99_MS = 20.0
WEEK = dt.timedelta(days=7)
# The endpoint's statement before the rollups (the reference).
RAW_SERIES = """
SELECT date_bin($4::interval, m.timestamp, $2::timestamptz) AS at,
       count(*) FILTER (WHERE m.metric_type = 'latency_ms') AS calls,
       count(*) FILTER (WHERE m.metric_type = 'error') AS errors,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY m.value)
           FILTER (WHERE m.metric_type = 'latency_ms') AS latency
FROM connector_metrics m
WHERE m.connector_id = $1 AND m.timestamp >= $2 AND m.timestamp < $3
  AND m.metric_type IN ('latency_ms', 'error')
GROUP BY 1 ORDER BY 1
"""


async def load(dsn: str, *, rows: int, installs: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    conn = await db.connect(dsn)
    try:
        await migrate.apply(conn)
        tenant = uuid.uuid4()
        await conn.execute("INSERT INTO tenants (id, slug, name) VALUES ($1, 'bench', 'Bench')",
                           tenant)  # fmt: skip
        ids = [await conn.fetchval(
            "INSERT INTO integration_connectors (tenant_id, connector_name, service_name)"
            " VALUES ($1, $2, 'bench-crm') RETURNING id", tenant, f"crm {i}")
            for i in range(installs)]  # fmt: skip
    finally:
        await conn.close()
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    busy, others = ids[0], ids[1:]
    raw = await asyncpg.connect(dsn)  # without the suite's jsonb codec, which COPY lacks
    try:
        batch: list[tuple[Any, ...]] = []
        for n in range(rows):
            install = busy if n % 10 == 0 else others[n % len(others)]
            at = now - WEEK * rng.random()
            failed = rng.random() < 0.02
            kind, value = ("error", 1.0) if failed else ("latency_ms", rng.lognormvariate(4, 0.6))
            batch.append((tenant, install, "crm", "bench-crm", kind, value, "{}", at))
            if len(batch) == 50_000:
                await raw.copy_records_to_table("connector_metrics", records=batch, columns=[
                    "tenant_id", "connector_id", "connector_name", "service_name",
                    "metric_type", "value", "labels", "timestamp"])  # fmt: skip
                batch = []
        if batch:
            await raw.copy_records_to_table("connector_metrics", records=batch, columns=[
                "tenant_id", "connector_id", "connector_name", "service_name", "metric_type",
                "value", "labels", "timestamp"])  # fmt: skip
        day = now - WEEK
        while day < now:  # as the rollup job would have, a day at a time
            await rollup.roll_up(raw, start=day, end=day + dt.timedelta(days=1))
            day += dt.timedelta(days=1)
        await raw.execute("INSERT INTO connector_metric_rollup_state VALUES (TRUE, $1)", now)
        await raw.execute("VACUUM ANALYZE")  # as autovacuum would, in time
    finally:
        await raw.close()
    return {"tenant": tenant, "busy": busy, "others": others, "now": now}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


async def reference(dsn: str, loaded: dict[str, Any], picks: list[uuid.UUID]) -> list[float]:
    conn = await asyncpg.connect(dsn)
    try:
        times = []
        start, end = loaded["now"] - WEEK, loaded["now"]
        for install in picks:
            began = time.perf_counter()
            await conn.fetch(RAW_SERIES, install, start, end, dt.timedelta(hours=1))
            times.append((time.perf_counter() - began) * 1000)
        return times
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--installs", type=int, default=100)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    info = run_info("install_metrics.py")
    tmp = Path(tempfile.mkdtemp(prefix="seedos-bench-metrics-"))
    server = supervisor = None
    try:
        server = embedded.start(tmp / "pg", cleanup_mode="delete")
        dsn = embedded.dsn(server)
        print(f"writing {args.rows} rows ...", file=sys.stderr)
        started = time.perf_counter()
        loaded = asyncio.run(load(dsn, rows=args.rows, installs=args.installs, seed=args.seed))
        print(f"... in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        keys = ServiceKeys.generate()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = service_env(dsn=dsn, urls={"connector_service": url, "marketplace_service": url},
                          data_dir=tmp / "data", log_level="WARNING", keys=keys)  # fmt: skip
        supervisor = Supervisor(env, log_path=tmp / "services.log")
        spec = ServiceSpec("connector_service", "connector_service.app:create_app")
        supervisor.start(spec, port)
        supervisor.wait_ready({spec.name: url}, timeout=60)
        token = keys.signer(ttl=3600).mint(
            Principal(tenant_id=loaded["tenant"], subject="apikey:bench", role=Role.viewer.value),
            audience="connector_service",
        )
        rng = random.Random(args.seed)
        spread = [rng.choice(loaded["others"]) for _ in range(args.requests)]
        busy = [loaded["busy"]] * args.requests
        params = {"from": (loaded["now"] - WEEK).isoformat(), "to": loaded["now"].isoformat(),
                  "step": 3600}  # fmt: skip
        figures: dict[str, Any] = {"rows": args.rows, "installs": args.installs}
        with httpx.Client(base_url=url, timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as client:  # fmt: skip
            for name, picks in (("spread", spread), ("busy", busy)):
                for install in picks[:20]:  # warm: connections, prepared statements, cache
                    client.get(f"/api/v1/integrations/{install}/metrics", params=params)
                times, points, calls = [], 0, 0
                for install in picks:
                    began = time.perf_counter()
                    r = client.get(f"/api/v1/integrations/{install}/metrics", params=params)
                    times.append((time.perf_counter() - began) * 1000)
                    r.raise_for_status()
                    points, calls = len(r.json()["points"]), r.json()["totals"]["calls"]
                ref = asyncio.run(reference(dsn, loaded, picks))
                figures[name] = {"p50_ms": statistics.median(times), "p99_ms": pct(times, 99),
                                 "points": points, "calls_in_window": calls,
                                 "sql_p50_ms": statistics.median(ref),
                                 "sql_p99_ms": pct(ref, 99)}  # fmt: skip
    finally:
        if supervisor is not None:
            supervisor.stop()
        if server is not None:
            server.cleanup()
    for name, f in (("an install of 1%", figures["spread"]), ("the busy install (10%)",
                                                              figures["busy"])):  # fmt: skip
        mark = "met" if f["p99_ms"] <= TARGET_P99_MS else "MISSED"
        print(
            f"{name}: {f['calls_in_window']} calls in 7 days, {f['points']} points:"
            f" p50 {f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms"
            f" (target <= {TARGET_P99_MS:.0f} ms p99: {mark}); the raw-row SQL before the rollups:"
            f" p50 {f['sql_p50_ms']:.1f} ms, p99 {f['sql_p99_ms']:.1f} ms"
        )
    if args.json:
        args.json.write_text(json.dumps({**info, **figures}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
