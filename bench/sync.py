"""Sync figures against the demo CRM: initial sync, an incremental run, the HTTP diff, cold load.

Usage (no manual setup)::

    .venv/bin/python bench/sync.py [--contacts 100000] [--changed 100] [--diffs 200]
                                   [--json out.json]

A throwaway embedded PostgreSQL is migrated and seeded; the demo CRM gets ``--contacts``
contacts (and 1,000 companies) and, with the example connector and the three services, runs as
a real process on loopback. A tenant installs the connector (page size 1,000, scheduled runs
off). Then, each beside a reference measured in the same run:

* *initial sync*: ``POST sync/run`` through the gateway until the run has finished (every
  stream pulled into the document, every page durable with its cursor). Reference: reading the
  same streams straight from the connector's ``/streams/{stream}/read`` (no document, no
  database), so the ratio is what the document and its persistence add. Target <= 10 s.
* *incremental run*: ``--changed`` contacts changed in the CRM, then a run. Reference: the
  connector reading those changes from the saved cursor. Target <= 0.5 s.
* *HTTP diff*: ``POST sync`` straight to connector_service (a minted internal token) with the
  state vector from before the incremental run and an empty update, ``--diffs`` times; p50 and
  the answer's size. Reference: pycrdt's own ``get_update(state_vector)`` on the same document
  in this process. Targets <= 10 ms p50, <= 20 KB.
* *cold load*: a fresh ``DocStore`` in this process opening the document from PostgreSQL
  (snapshot + log, as after a restart), before and after folding the log into the snapshot.
  Reference: raw pycrdt applying the same full-state bytes to a new ``Doc``. Target <= 1.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import signal
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import stack as stack_  # noqa: E402  (bench/stack.py)
from machine import machine  # noqa: E402  (bench/machine.py)
from pycrdt import Doc, write_message  # noqa: E402

from common import db  # noqa: E402
from connector_service.sync.store import DocStore  # noqa: E402

SDK = ROOT / "sdk"
TARGETS = {"initial_s": 10.0, "incremental_s": 0.5, "diff_p50_ms": 10.0, "diff_kb": 20.0,
           "cold_load_s": 1.5}  # fmt: skip


def read_all(stack: stack_.Stack, stream: str, cursor: str | None) -> tuple[int, Any]:
    """Every record of a stream straight from the connector, from ``cursor``."""
    count = 0
    with httpx.Client(timeout=120) as client:
        while True:
            page = client.post(f"{stack.connector.url}/streams/{stream}/read", json={
                "config": stack.config, "credentials": stack.credentials, "cursor": cursor,
            }).json()  # fmt: skip
            count += len(page["records"])
            cursor = page["next_cursor"]
            if not page["has_more"]:
                return count, cursor


def wait_run(client: httpx.Client, base: str, after: dt.datetime) -> dict[str, Any]:
    while True:
        status = client.get(base + "/sync/status").json()
        last = status["last_run"]
        if (last and last["outcome"] != "running" and last["finished_at"]
                and dt.datetime.fromisoformat(last["finished_at"]) >= after):  # fmt: skip
            if last["outcome"] != "succeeded":
                raise RuntimeError(f"run failed: {last}")
            return status
        time.sleep(0.02)


def run_sync(client: httpx.Client, base: str) -> float:
    asked = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    r = client.post(base + "/sync/run")
    r.raise_for_status()
    wait_run(client, base, asked)
    return time.perf_counter() - started


async def cold_load(dsn: str, integration_id: uuid.UUID, *, fold: bool) -> dict[str, float]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=db._init_connection)
    try:
        database = db.Database(pool, acquire_timeout=30)
        store = DocStore(database)
        started = time.perf_counter()
        async with store.session(integration_id) as live:
            seconds = time.perf_counter() - started
            full = live.doc.get_update()
            records = len(live.records)
            if fold:
                await store.compact(live)
        raw = time.perf_counter()
        Doc().apply_update(full)
        return {"store_s": seconds, "raw_pycrdt_s": time.perf_counter() - raw,
                "records": records, "full_update_mb": len(full) / 1e6}  # fmt: skip
    finally:
        await pool.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--changed", type=int, default=100)
    parser.add_argument("--diffs", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([".venv/bin/python", "bench/sync.py", *sys.argv[1:]]),
        "machine": machine(),
    }
    with stack_.running(args.contacts) as stack:
        figures = measure(stack, args)
    report(figures, info, args)
    return 0


def measure(stack: stack_.Stack, args: argparse.Namespace) -> dict[str, Any]:
    api, direct, base = stack.api, stack.direct, stack.base
    print("reading straight from the connector (reference) ...", file=sys.stderr)
    started = time.perf_counter()
    counted = {name: read_all(stack, name, None) for name in ("contacts", "companies")}
    read_s = time.perf_counter() - started
    print("initial sync ...", file=sys.stderr)
    initial_s = run_sync(api, base)
    status = api.get(base + "/sync/status").json()
    pulled = status["last_run"]["records_pulled"]
    assert pulled == sum(c for c, _ in counted.values()), (pulled, counted)

    sv_before = direct.get(base + "/sync/state-vector").content
    first = direct.post(base + "/sync", content=write_message(Doc().get_state())
                        + write_message(b""))  # fmt: skip

    print(f"changing {args.changed} contacts in the CRM ...", file=sys.stderr)
    with httpx.Client(base_url=stack.crm.url, headers={"X-API-Key": stack.crm_key}) as crm:
        listed = crm.get("/v1/contacts", params={"limit": args.changed}).json()["results"]
        for i, contact in enumerate(listed):
            crm.patch(f"/v1/contacts/{contact['id']}", json={"phone": f"+1 555 {i:04d}"})
    started = time.perf_counter()
    changed_read, _ = read_all(stack, "contacts", status["cursors"]["contacts"])
    incremental_ref_s = time.perf_counter() - started
    incremental_s = run_sync(api, base)
    assert api.get(base + "/sync/status").json()["last_run"]["records_pulled"] >= len(listed)

    print("HTTP diffs ...", file=sys.stderr)
    body = write_message(sv_before) + write_message(b"")
    times, size = [], 0
    for _ in range(args.diffs):
        started = time.perf_counter()
        answer = direct.post(base + "/sync", content=body)
        times.append(time.perf_counter() - started)
        size = len(answer.content)
    metrics = direct.get("/metrics").text.splitlines()
    diffs_by = {line.split('"')[1]: float(line.rsplit(" ", 1)[1])
                for line in metrics if line.startswith("seedos_sync_diffs_total{")}  # fmt: skip
    doc_now = Doc()
    doc_now.apply_update(first.content)
    doc_now.apply_update(answer.content)
    raw_times = []
    for _ in range(args.diffs):
        started = time.perf_counter()
        doc_now.get_update(sv_before)
        raw_times.append(time.perf_counter() - started)

    print("cold loads ...", file=sys.stderr)
    integration_id = uuid.UUID(stack.integration_id)
    log_load = asyncio.run(cold_load(stack.dsn, integration_id, fold=True))
    snapshot_load = asyncio.run(cold_load(stack.dsn, integration_id, fold=False))
    return {
        "contacts": args.contacts,
        "initial_s": initial_s,
        "initial_reference_read_s": read_s,
        "initial_ratio_to_read": initial_s / read_s,
        "incremental_s": incremental_s,
        "incremental_reference_read_s": incremental_ref_s,
        "incremental_changed": changed_read,
        "diff_p50_ms": statistics.median(times) * 1000,
        "diff_p99_ms": sorted(times)[int(len(times) * 0.99) - 1] * 1000,
        "diff_kb": size / 1000,
        "diffs_by_source": diffs_by,
        "diff_raw_pycrdt_p50_ms": statistics.median(raw_times) * 1000,
        "cold_load_from_log": log_load,
        "cold_load_from_snapshot": snapshot_load,
    }


def report(figures: dict[str, Any], info: dict[str, Any], args: argparse.Namespace) -> None:
    def mark(value: float, target: float) -> str:
        return "met" if value <= target else "MISSED"

    f = figures
    lines = [
        f"initial sync of {f['contacts']} contacts: {f['initial_s']:.2f} s"
        f" (target <= 10 s: {mark(f['initial_s'], 10)}); reading them straight from the"
        f" connector took {f['initial_reference_read_s']:.2f} s"
        f" ({f['initial_ratio_to_read']:.2f}x)",
        f"incremental run, {args.changed} changed: {f['incremental_s'] * 1000:.0f} ms"
        f" (target <= 500 ms: {mark(f['incremental_s'], 0.5)}); the connector alone read them"
        f" in {f['incremental_reference_read_s'] * 1000:.0f} ms",
        f"HTTP diff for {args.changed} changed records: p50 {f['diff_p50_ms']:.2f} ms"
        f" (target <= 10 ms: {mark(f['diff_p50_ms'], 10)}), p99 {f['diff_p99_ms']:.2f} ms,"
        f" {f['diff_kb']:.1f} KB (target <= 20 KB: {mark(f['diff_kb'], 20)});"
        f" pycrdt's own get_update: p50 {f['diff_raw_pycrdt_p50_ms']:.3f} ms",
        f"cold load from snapshot: {f['cold_load_from_snapshot']['store_s']:.2f} s"
        f" (target <= 1.5 s: {mark(f['cold_load_from_snapshot']['store_s'], 1.5)});"
        f" from the log of the initial sync: {f['cold_load_from_log']['store_s']:.2f} s;"
        f" raw pycrdt applying the full state"
        f" ({f['cold_load_from_snapshot']['full_update_mb']:.1f} MB):"
        f" {f['cold_load_from_snapshot']['raw_pycrdt_s']:.2f} s",
    ]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({**info, **figures}, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
