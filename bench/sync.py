"""Sync at scale against the demo CRM: initial sync per record across sizes, memory, the
incremental run, the HTTP diff of one shard, and opening cold shards.

Usage (no manual setup)::

    .venv/bin/python bench/sync.py [--sizes 100000,300000,1000000 | --contacts N]
                                   [--changed 100] [--diffs 200] [--cold-shards 20]
                                   [--json out.json]

Every size (contacts; the CRM also holds 1,000 companies) is measured on a stack of its own
(bench/stack.py: a throwaway embedded PostgreSQL, the demo CRM seeded, the example connector,
the three services as real processes on loopback, a tenant that installed the connector with
pages of 1,000 and scheduled runs off), one size after the other in one invocation. For each,
beside a reference measured in the same run:

* *initial sync*: ``POST sync/run`` through the gateway until the run has finished (each
  stream's first load staged and built into its shards, the shards live, the cursors saved).
  Reference: reading the same streams straight from the connector's
  ``/streams/{stream}/read`` (no documents, no database), once before and once after the sync;
  the ratio is to the mean of the two. Both are also given per record (µs), and the sync's
  time per record at each size is compared with the smallest size's. Targets: sync <= 1.5x the
  reference at every size, time per record flat within +-20% across sizes. Beside them: where
  the sync's time went by the server's clock (``sync/status`` ``loading``: until staging began,
  staging, and after the last page was staged: building the shards, making them live), and the
  CPU seconds every process (PostgreSQL with its backends) spent during the sync and during
  the first reference read.
* *memory*: connector_service's resident set (psutil), sampled every 0.2 s from the moment the
  stack is up until the size's last figure; the peak, in all and per phase, beside the resident
  set right after start. Target: <= 1 GB throughout at 1,000,000.
* *incremental run*: ``--changed`` contacts changed in the CRM, then a run through the gateway.
  Reference: the connector reading those changes from the cursor the initial sync saved.
  Target <= 0.5 s. Also: how many shards hold the changed contacts (each is opened by the run).
* *HTTP diff of a shard*: the contacts shard holding the most of the changed contacts
  (``GET sync/shards/for``); its state vector taken (``GET sync/state-vector?shard=``) before the
  incremental run; after it, ``POST sync?shard=`` straight to connector_service (a minted
  internal token) with that state vector and an empty update, ``--diffs`` times: p50, p99 and
  the answer's size. Reference: pycrdt's own ``get_update(state_vector)`` on the same shard's
  document (its full state, fetched the same way) in this process. Targets <= 10 ms p50,
  <= 20 KB.
* *cold shard open*: a fresh ``DocStore`` in this process (a pool on the stack's PostgreSQL)
  opening ``--cold-shards`` different contacts shards, spread over the hash range and the
  diff's shard among them (snapshot plus log tail), each as a session after a restart would:
  p50 and max. One other shard is opened first and not counted (the pool's connection and its
  prepared statements, which a running service has). Reference: raw pycrdt applying the same
  shard's full state to a new ``Doc`` (the median of three). Target <= 50 ms.

Each size's wall time (seeding, stack start, measurement) is printed too. Exit code 0 after a
complete run whether or not targets were met (the lines say met/MISSED); 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import signal
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import psutil  # noqa: E402
import stack as stack_  # noqa: E402  (bench/stack.py)
from machine import run_info  # noqa: E402  (bench/machine.py)
from pycrdt import Doc, write_message  # noqa: E402

from common import db  # noqa: E402
from connector_service.sync.store import DocStore  # noqa: E402

STREAMS = ("contacts", "companies")
TARGETS = {
    "initial_ratio": 1.5, "per_record_spread": 0.2, "rss_mb": 1000.0, "incremental_s": 0.5,
    "diff_p50_ms": 10.0, "diff_kb": 20.0, "cold_open_ms": 50.0,
}  # fmt: skip


class RssSampler(threading.Thread):
    """A process's resident set every ``every`` seconds: the peak, and the peak per phase."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.process, self.every = psutil.Process(pid), every
        self.start_mb = self.process.memory_info().rss / 1e6
        self.peak_mb, self.phase, self.phases = self.start_mb, "start", {"start": self.start_mb}
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.every):
            self.sample()

    def sample(self) -> None:
        mb = self.process.memory_info().rss / 1e6
        self.peak_mb = max(self.peak_mb, mb)
        self.phases[self.phase] = max(self.phases.get(self.phase, 0.0), mb)

    def enter(self, phase: str) -> None:
        self.sample()
        self.phase = phase

    def stop(self) -> None:
        self._done.set()
        self.join()
        self.sample()


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


def read_streams(stack: stack_.Stack) -> tuple[float, int]:
    started = time.perf_counter()
    records = sum(read_all(stack, name, None)[0] for name in STREAMS)
    return time.perf_counter() - started, records


def run_sync(client: httpx.Client, base: str) -> tuple[float, dict[str, float]]:
    """A run through the gateway, from the request until its row says it finished. Polled
    every 20 ms at first, then every 0.5% of the time elapsed (a 5-minute run is not polled 50
    times a second), so the figure is at most ~0.5% late. Also, by the server's clock, where a
    first load's time went (``sync/status`` ``loading``: when staging started and when its last
    page was staged; the rest, after that, is building the shards and making them live)."""
    asked = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    while (r := client.post(base + "/sync/run")).status_code == 409:  # the last run's tail
        if time.perf_counter() - started > 60:
            r.raise_for_status()
        time.sleep(0.05)
    r.raise_for_status()
    loading: dict[str, Any] = {}
    while True:
        status = client.get(base + "/sync/status").json()
        for stream, progress in (status["loading"] or {}).items():  # every stream seen loading
            loading[stream] = progress
        last = status["last_run"]
        if (last and last["outcome"] != "running" and last["finished_at"]
                and dt.datetime.fromisoformat(last["finished_at"]) >= asked):  # fmt: skip
            if last["outcome"] != "succeeded":
                raise RuntimeError(f"run failed: {last}")
            return time.perf_counter() - started, load_phases(last, loading)
        time.sleep(min(0.5, max(0.02, (time.perf_counter() - started) / 200)))


def load_phases(run: dict[str, Any], loading: dict[str, Any]) -> dict[str, float]:
    """For the stream that staged the most records (the other, companies, loads after it)."""
    at = dt.datetime.fromisoformat
    if not loading:
        return {}
    largest = max(loading.values(), key=lambda s: s["records"])
    first, staged = at(largest["started_at"]), at(largest["updated_at"])
    return {
        "until_staging_s": (first - at(run["started_at"])).total_seconds(),
        "staging_s": (staged - first).total_seconds(),
        "after_staging_s": (at(run["finished_at"]) - staged).total_seconds(),
    }


def stream_shards(client: httpx.Client, base: str, stream: str) -> list[dict[str, Any]]:
    found, cursor = [], None
    while True:
        page = client.get(base + "/sync/shards", params={
            "stream": stream, "limit": 200, **({"cursor": cursor} if cursor else {}),
        }).json()  # fmt: skip
        found += [item for item in page["items"] if item["stream"] == stream]
        if not (cursor := page["next_cursor"]):
            return found


def busiest_shard(client: httpx.Client, base: str, keys: list[str]) -> tuple[str, int, int]:
    """The shard holding most of the contacts ``keys`` (at most 200), how many it holds, and
    how many shards hold them."""
    r = client.get(base + "/sync/shards/for", params={"stream": "contacts", "keys": keys})
    r.raise_for_status()
    held: dict[str, int] = {}
    for item in r.json()["items"]:
        held[item["shard"]] = held.get(item["shard"], 0) + 1
    shard = max(held, key=held.__getitem__)
    return shard, held[shard], len(held)


async def cold_open(dsn: str, warmup: uuid.UUID, shard_ids: list[uuid.UUID]) -> list[dict]:
    """Each shard opened by a fresh DocStore (never in its memory before), and raw pycrdt
    applying the full state it opened to a new Doc."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=db._init_connection)
    try:
        store = DocStore(db.Database(pool, acquire_timeout=30))
        async with store.session(warmup):
            pass
        opened = []
        for shard_id in shard_ids:
            started = time.perf_counter()
            async with store.session(shard_id) as live:
                store_s = time.perf_counter() - started
                full, records = live.doc.get_update(), len(live.records)
                log_rows = live.log_rows
            raw = []
            for _ in range(3):  # the median of three: the reference is not cold
                begun = time.perf_counter()
                Doc().apply_update(full)
                raw.append(time.perf_counter() - begun)
            opened.append({"shard": str(shard_id), "store_ms": store_s * 1000,
                           "raw_pycrdt_ms": statistics.median(raw) * 1000,
                           "records": records, "log_rows": log_rows,
                           "full_state_kb": len(full) / 1000})  # fmt: skip
        return opened
    finally:
        await pool.close()


def change_contacts(stack: stack_.Stack, count: int) -> list[str]:
    with httpx.Client(base_url=stack.crm.url, headers={"X-API-Key": stack.crm_key}) as crm:
        listed = crm.get("/v1/contacts", params={"limit": count}).json()["results"]
        for i, contact in enumerate(listed):
            crm.patch(f"/v1/contacts/{contact['id']}", json={"phone": f"+1 555 {i:04d}"}
                      ).raise_for_status()  # fmt: skip
    return [contact["id"] for contact in listed]


def time_diffs(direct: httpx.Client, base: str, shard: str, sv: bytes, n: int) -> dict:
    body = write_message(sv) + write_message(b"")
    times, answer = [], b""
    for _ in range(n):
        started = time.perf_counter()
        r = direct.post(base + "/sync", params={"shard": shard}, content=body)
        times.append(time.perf_counter() - started)
        r.raise_for_status()
        answer = r.content
    full = direct.post(base + "/sync", params={"shard": shard},
                       content=write_message(Doc().get_state()) + write_message(b""))  # fmt: skip
    doc = Doc()
    doc.apply_update(full.content)
    raw_times = []
    for _ in range(n):
        started = time.perf_counter()
        raw = doc.get_update(sv)
        raw_times.append(time.perf_counter() - started)
    metrics = direct.get("/metrics").text.splitlines()
    return {
        "diff_p50_ms": statistics.median(times) * 1000,
        "diff_p99_ms": sorted(times)[max(0, int(len(times) * 0.99) - 1)] * 1000,
        "diff_kb": len(answer) / 1000,
        "diff_raw_pycrdt_p50_ms": statistics.median(raw_times) * 1000,
        "diff_raw_pycrdt_kb": len(raw) / 1000,
        "diff_shard_full_state_kb": len(full.content) / 1000,
        "diffs_by_source": {line.split('"')[1]: float(line.rsplit(" ", 1)[1])
                            for line in metrics if line.startswith("seedos_sync_diffs_total{")},
    }  # fmt: skip


def say(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def measure_size(contacts: int, args: argparse.Namespace) -> dict[str, Any]:
    began = time.perf_counter()
    with stack_.running(contacts) as stack:
        ready_s = time.perf_counter() - began
        rss = RssSampler(stack.pids["connector_service"])
        rss.start()
        try:
            figures = measure(stack, rss, args)
        finally:
            rss.stop()
        measured_s = time.perf_counter() - began - ready_s
    return {"contacts": contacts, **figures, "rss_start_mb": rss.start_mb,
            "rss_peak_mb": rss.peak_mb, "rss_peak_by_phase_mb": rss.phases,
            "seed_s": stack.seed_s, "stack_ready_s": ready_s, "measure_s": measured_s,
            "wall_s": time.perf_counter() - began}  # fmt: skip


def measure(stack: stack_.Stack, rss: RssSampler, args: argparse.Namespace) -> dict[str, Any]:
    figures = initial(stack, rss)
    figures.update(incremental(stack, rss, args, cursor=figures.pop("cursor")))
    figures.update(cold_opens(stack, rss, args, diff_shard=figures["diff_shard"]))
    return figures


def initial(stack: stack_.Stack, rss: RssSampler) -> dict[str, Any]:
    """The initial sync, between two reads straight from the connector."""
    say("reading straight from the connector (reference) ...")
    rss.enter("reference_read_before")
    cpu = stack_.cpu_seconds(stack.pids)
    read_before_s, records = read_streams(stack)
    cpu_read = stack_.cpu_since(stack.pids, cpu)
    say("initial sync ...")
    rss.enter("initial_sync")
    cpu = stack_.cpu_seconds(stack.pids)
    initial_s, phases = run_sync(stack.api, stack.base)
    cpu_initial = stack_.cpu_since(stack.pids, cpu)
    status = stack.api.get(stack.base + "/sync/status").json()
    assert status["last_run"]["records_pulled"] == records, (status["last_run"], records)
    say("reading straight from the connector again (reference) ...")
    rss.enter("reference_read_after")
    read_after_s, _ = read_streams(stack)
    read_s = (read_before_s + read_after_s) / 2
    return {
        "records": records,
        "initial_s": initial_s,
        "reference_read_s": [read_before_s, read_after_s],
        "initial_ratio": initial_s / read_s,
        "initial_phases_s": phases,
        "initial_us_per_record": initial_s / records * 1e6,
        "reference_us_per_record": read_s / records * 1e6,
        "cpu_s_reference_read": cpu_read,
        "cpu_s_initial_sync": cpu_initial,
        "cursor": status["cursors"]["contacts"],
    }


def incremental(
    stack: stack_.Stack, rss: RssSampler, args: argparse.Namespace, *, cursor: str
) -> dict[str, Any]:
    """Contacts changed in the CRM, a run, and the HTTP diff of the shard most of them are in."""
    api, direct, base = stack.api, stack.direct, stack.base
    rss.enter("incremental")
    say(f"changing {args.changed} contacts in the CRM ...")
    changed = change_contacts(stack, args.changed)
    shard, held, touched = busiest_shard(direct, base, changed[:200])
    r = direct.get(base + "/sync/state-vector", params={"shard": shard})
    r.raise_for_status()
    sv_before = r.content
    started = time.perf_counter()
    changed_read, _ = read_all(stack, "contacts", cursor)
    incremental_ref_s = time.perf_counter() - started
    incremental_s, _ = run_sync(api, base)
    assert api.get(base + "/sync/status").json()["last_run"]["records_pulled"] >= len(changed)
    say("HTTP diffs ...")
    rss.enter("diffs")
    return {
        "incremental_s": incremental_s,
        "incremental_reference_read_s": incremental_ref_s,
        "incremental_changed": changed_read,
        "incremental_shards": touched,
        "diff_shard": shard,
        "diff_shard_changed": held,
        **time_diffs(direct, base, shard, sv_before, args.diffs),
    }


def cold_opens(
    stack: stack_.Stack, rss: RssSampler, args: argparse.Namespace, *, diff_shard: str
) -> dict[str, Any]:
    """``--cold-shards`` contacts shards (the diff's among them) opened by a fresh DocStore."""
    say("cold shard opens ...")
    rss.enter("cold_opens")
    shards = stream_shards(stack.direct, stack.base, "contacts")
    ids = [s["id"] for s in shards if s["id"] != diff_shard]
    step = max(1, len(ids) // max(1, args.cold_shards - 1))
    picked = [diff_shard, *ids[::step][: args.cold_shards - 1]]
    warmup = next(s["id"] for s in stream_shards(stack.direct, stack.base, "companies"))
    opened = asyncio.run(cold_open(stack.dsn, uuid.UUID(warmup), [uuid.UUID(i) for i in picked]))
    return {
        "shards_contacts": len(shards),
        "cold_open_p50_ms": statistics.median(o["store_ms"] for o in opened),
        "cold_open_max_ms": max(o["store_ms"] for o in opened),
        "cold_open_raw_pycrdt_p50_ms": statistics.median(o["raw_pycrdt_ms"] for o in opened),
        "cold_open_records_p50": statistics.median(o["records"] for o in opened),
        "cold_opens": opened,
    }


def sizes_of(args: argparse.Namespace) -> list[int]:
    if args.contacts is not None:
        return [args.contacts]
    return [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--sizes", default="100000,300000,1000000",
                       help="contacts, comma-separated, each on a stack of its own")  # fmt: skip
    group.add_argument("--contacts", type=int, help="one size only")
    parser.add_argument("--changed", type=int, default=100)
    parser.add_argument("--diffs", type=int, default=200)
    parser.add_argument("--cold-shards", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    info: dict[str, Any] = {
        **run_info("sync.py"),
    }
    results = []
    try:
        for contacts in sizes_of(args):
            print(f"== {contacts} contacts", file=sys.stderr)
            results.append(measure_size(contacts, args))
            report_size(results[-1], args)
    except KeyboardInterrupt:
        return 130
    summary = report_summary(results)
    if args.json:
        args.json.write_text(json.dumps({**info, "targets": TARGETS, "sizes": results,
                                         **summary}, indent=2, default=str))  # fmt: skip
    return 0


def mark(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report_size(f: dict[str, Any], args: argparse.Namespace) -> None:
    t = TARGETS
    phases = ", ".join(f"{k} {v:.0f}" for k, v in f["rss_peak_by_phase_mb"].items())
    print("\n".join([
        f"--- {f['contacts']:,} contacts ({f['records']:,} records, {f['shards_contacts']}"
        f" contacts shards); seeding {f['seed_s']:.0f} s, stack up after {f['stack_ready_s']:.0f}"
        f" s, measured in {f['measure_s']:.0f} s",
        f"initial sync: {f['initial_s']:.2f} s = {f['initial_us_per_record']:.1f} us/record;"
        f" reading straight from the connector: {f['reference_read_s'][0]:.2f} s before,"
        f" {f['reference_read_s'][1]:.2f} s after = {f['reference_us_per_record']:.1f}"
        f" us/record; ratio {f['initial_ratio']:.2f}x (target <= {t['initial_ratio']}x:"
        f" {mark(f['initial_ratio'] <= t['initial_ratio'])})",
        "the largest stream's first load by the server's clock: " + ", ".join(
            f"{k.removesuffix('_s').replace('_', ' ')} {v:.2f} s"
            for k, v in f["initial_phases_s"].items()),
        "CPU s, initial sync (the first reference read): " + ", ".join(
            f"{name} {sec:.1f} ({f['cpu_s_reference_read'].get(name, 0):.1f})"
            for name, sec in f["cpu_s_initial_sync"].items()),
        f"connector_service RSS: peak {f['rss_peak_mb']:.0f} MB (target <= 1 GB at 1,000,000:"
        f" {mark(f['rss_peak_mb'] <= t['rss_mb'])}); {f['rss_start_mb']:.0f} MB after start;"
        f" peak by phase (MB): {phases}",
        f"incremental run, {args.changed} changed: {f['incremental_s'] * 1000:.0f} ms (target"
        f" <= 500 ms: {mark(f['incremental_s'] <= t['incremental_s'])}; the changes are in"
        f" {f['incremental_shards']} shards); the connector alone"
        f" read the {f['incremental_changed']} changes in"
        f" {f['incremental_reference_read_s'] * 1000:.0f} ms",
        f"HTTP diff of the shard holding {f['diff_shard_changed']} of the changed contacts"
        f" ({f['diff_shard_full_state_kb']:.0f} KB full state): p50 {f['diff_p50_ms']:.2f} ms"
        f" (target <= 10 ms: {mark(f['diff_p50_ms'] <= t['diff_p50_ms'])}), p99"
        f" {f['diff_p99_ms']:.2f} ms, {f['diff_kb']:.1f} KB (target <= 20 KB:"
        f" {mark(f['diff_kb'] <= t['diff_kb'])}); pycrdt's own get_update: p50"
        f" {f['diff_raw_pycrdt_p50_ms']:.3f} ms, {f['diff_raw_pycrdt_kb']:.1f} KB",
        f"cold shard open ({len(f['cold_opens'])} shards, {f['cold_open_records_p50']:.0f}"
        f" records p50): p50 {f['cold_open_p50_ms']:.1f} ms, max {f['cold_open_max_ms']:.1f} ms"
        f" (target <= 50 ms: {mark(f['cold_open_max_ms'] <= t['cold_open_ms'])}); raw pycrdt"
        f" applying the same full state: p50 {f['cold_open_raw_pycrdt_p50_ms']:.1f} ms",
    ]), flush=True)  # fmt: skip


def report_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Time per record at each size against the smallest size's, for the sync and the
    reference (the CRM and connector should be flat themselves)."""
    if not results:
        return {}
    base = min(results, key=lambda f: f["contacts"])
    spread = {
        f["contacts"]: {
            "initial": f["initial_us_per_record"] / base["initial_us_per_record"],
            "reference": f["reference_us_per_record"] / base["reference_us_per_record"],
        }
        for f in results
    }
    flat = all(abs(s["initial"] - 1) <= TARGETS["per_record_spread"] for s in spread.values())
    print("--- time per record against the smallest size's: " + "; ".join(
        f"{n:,}: sync {s['initial']:.2f}x, reference {s['reference']:.2f}x"
        for n, s in spread.items()
    ) + f" (target: sync within 0.8-1.2x: {mark(flat)})")  # fmt: skip
    print("initial sync <= 1.5x the reference at every size: "
          + mark(all(f["initial_ratio"] <= TARGETS["initial_ratio"] for f in results))
          + "; total wall time " + f"{sum(f['wall_s'] for f in results):.0f} s")  # fmt: skip
    return {"per_record_vs_smallest": spread, "per_record_flat": flat}


if __name__ == "__main__":
    sys.exit(main())
