"""Connector read throughput: all contacts of the demo CRM, through the connector and directly.

Usage (no manual setup)::

    .venv/bin/python bench/connector_read.py [--contacts 100000] [--page-size 1000] [--rounds 3]
                                             [--json out.json] [--profile conn.speedscope.json]

The demo CRM (``examples.demo_crm``) starts as a real uvicorn process on a free loopback port with
a temporary data folder and a fresh API key, and gets ``--contacts`` contacts through
``POST /admin/seed``; the example connector (``examples.crm_connector``) starts the same way.
Then, for ``--rounds`` rounds, interleaved:

* *direct*: ``GET /v1/contacts?updated_after=<watermark>&include_deleted=true&limit=<page size>``
  on the CRM with one ``httpx.Client``, the watermark moving to the last record's ``updated_at``
  (the query the connector sends), until ``next_cursor`` is null;
* *connector*: ``POST /streams/contacts/read`` on the connector from cursor null, following
  ``next_cursor`` while ``has_more``.

Both parse every JSON page and must see exactly ``--contacts`` records with the same ids. The
medians of records/s are compared: the issue's target is connector >= 0.7x direct. CPU seconds
of the connector and CRM processes (``/proc/<pid>/stat``) and of this client are kept per read.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from machine import cpu_seconds, machine, run_info  # bench/machine.py

from seedos_sdk.testing import Served, start

ROOT = Path(__file__).resolve().parents[1]
SDK = ROOT / "sdk"
CRM_APP = "examples.demo_crm.app:create_app"
CONNECTOR_APP = "examples.crm_connector.connector:app"
EPOCH = "1970-01-01T00:00:00+00:00"  # the connector's first watermark
TARGET_RATIO = 0.7
WARMUP_PAGES = 10
TARGETS = ("direct", "connector")
PROCESSES = ("connector", "crm")


# --------------------------------------------------------------------------- environment


def children() -> list[int]:
    """Live child processes of this one (a service whose start was interrupted has no handle)."""
    me, found = str(os.getpid()), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[1] == me and fields[0] != "Z":
                found.append(int(stat.parent.name))
    return found


# --------------------------------------------------------------------------- reads


@dataclass
class Read:
    """What one full read saw."""

    ids: list[str] = field(default_factory=list)
    deleted: int = 0
    pages: int = 0
    response_bytes: int = 0


def read_direct(client: httpx.Client, page_size: int, max_pages: int | None = None) -> Read:
    """Every contact straight from the CRM, with the query the connector sends."""
    out = Read()
    watermark = EPOCH
    while max_pages is None or out.pages < max_pages:
        r = client.get(
            "/v1/contacts",
            params={"updated_after": watermark, "include_deleted": "true", "limit": page_size},
        )
        r.raise_for_status()
        body = r.json()
        results = body["results"]
        out.pages += 1
        out.response_bytes += len(r.content)
        for record in results:
            if record.get("deleted"):
                out.deleted += 1
            else:
                out.ids.append(record["id"])
        if results:
            watermark = results[-1]["updated_at"]
        if body["next_cursor"] is None:
            break
    return out


def read_connector(
    client: httpx.Client, request: dict[str, Any], max_pages: int | None = None
) -> Read:
    """Every contact through the connector's contract, from cursor null while ``has_more``."""
    out = Read()
    cursor: str | None = None
    while max_pages is None or out.pages < max_pages:
        r = client.post("/streams/contacts/read", json={**request, "cursor": cursor})
        r.raise_for_status()
        body = r.json()
        out.pages += 1
        out.response_bytes += len(r.content)
        out.ids.extend(record["id"] for record in body["records"])
        out.deleted += len(body["deleted"])
        cursor = body["next_cursor"]
        if not body["has_more"]:
            break
    return out


@dataclass
class Run:
    target: str  # "direct" | "connector"
    round: int
    seconds: float
    records: int
    pages: int
    records_per_s: float
    ms_per_page: float
    response_bytes: int
    cpu_s: dict[str, float]  # process -> CPU seconds during this read ("client" is this one)


def measure(
    target: str, rnd: int, fn: Callable[[], Read], pids: dict[str, int]
) -> tuple[Run, Read]:
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    client_before = time.process_time()
    started = time.perf_counter()
    seen = fn()
    seconds = time.perf_counter() - started
    cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    cpu["client"] = time.process_time() - client_before
    run = Run(
        target=target,
        round=rnd,
        seconds=seconds,
        records=len(seen.ids),
        pages=seen.pages,
        records_per_s=len(seen.ids) / seconds,
        ms_per_page=seconds * 1000 / max(seen.pages, 1),
        response_bytes=seen.response_bytes,
        cpu_s=cpu,
    )
    return run, seen


def check(seen: Read, count: int, expected: list[str] | None, target: str) -> None:
    """Exactly ``count`` contacts, each once, and (when given) the ids of the first read in the
    same order."""
    if seen.deleted:
        raise RuntimeError(f"{target}: {seen.deleted} tombstones where none were expected")
    distinct = len(set(seen.ids))
    if len(seen.ids) != count or distinct != count:
        raise RuntimeError(
            f"{target}: {len(seen.ids)} records ({distinct} distinct), expected {count}"
        )
    if expected is not None and seen.ids != expected:
        raise RuntimeError(f"{target}: not the same ids as the first direct read")


# --------------------------------------------------------------------------- report


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(runs: list[Run], args: argparse.Namespace, info: dict[str, Any]) -> dict[str, Any]:
    def med(target: str, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs if r.target == target)

    def med_cpu(target: str, proc: str) -> float:
        return statistics.median(r.cpu_s[proc] for r in runs if r.target == target)

    rps = {t: med(t, "records_per_s") for t in TARGETS}
    secs = {t: med(t, "seconds") for t in TARGETS}
    per_page = {t: med(t, "ms_per_page") for t in TARGETS}
    procs = (*PROCESSES, "client")
    cpu = {t: {p: med_cpu(t, p) for p in procs} for t in TARGETS}
    ratio = rps["connector"] / rps["direct"] if rps["direct"] else 0.0
    ok = ratio >= TARGET_RATIO
    pages = next(r.pages for r in runs if r.target == "connector")
    m = info["machine"]

    print()
    print(
        f"Connector read throughput: {args.contacts:,} contacts in pages of {args.page_size:,}"
        f" ({pages} pages)"
    )
    print(
        f"machine: {m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']},"
        f" httpx {m['httpx']}; {args.rounds} rounds interleaved direct/connector, medians"
    )
    print()
    print(f"{'':26}{'direct':>10}{'connector':>11}{'ratio':>9}{'target':>10}")
    print(
        f"  {'records/s':24}{rps['direct']:10,.0f}{rps['connector']:11,.0f}{ratio:8.2f}x"
        f"{f'>= {TARGET_RATIO:g}x':>10}  {mark(ok)}"
    )
    print(f"  {'seconds per read':24}{secs['direct']:10.2f}{secs['connector']:11.2f}")
    print(f"  {'ms per page':24}{per_page['direct']:10.1f}{per_page['connector']:11.1f}")
    print()
    print("CPU seconds per read (medians):")
    print(f"  {'':22}{'connector':>11}{'crm':>8}{'client':>8}")
    for t in TARGETS:
        c = cpu[t]
        print(f"  {t:22}{c['connector']:11.2f}{c['crm']:8.2f}{c['client']:8.2f}")
    print()
    print("per round:")
    print(
        f"  {'round':6}{'path':11}{'records':>9}{'s':>8}{'records/s':>11}{'ms/page':>9}"
        f"{'cpu conn':>10}{'cpu crm':>9}{'cpu client':>11}"
    )
    for r in runs:
        print(
            f"  {r.round:<6}{r.target:11}{r.records:9,}{r.seconds:8.2f}{r.records_per_s:11,.0f}"
            f"{r.ms_per_page:9.1f}{r.cpu_s['connector']:10.2f}{r.cpu_s['crm']:9.2f}"
            f"{r.cpu_s['client']:11.2f}"
        )
    return {
        **info,
        "contacts": args.contacts,
        "page_size": args.page_size,
        "pages": pages,
        "rounds": args.rounds,
        "records_per_s": rps,
        "seconds": secs,
        "ms_per_page": per_page,
        "ratio": ratio,
        "cpu_s_per_read": cpu,
        "target": {"ratio": TARGET_RATIO, "met": ok},
        "runs": [asdict(r) for r in runs],
    }


def profile_connector(
    pid: int, out: Path, fmt: str, read: Callable[[], Read], rate: int = 250
) -> None:
    """Sample the connector with py-spy during one more read through it."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("--profile: py-spy not found (.venv/bin/pip install py-spy)", file=sys.stderr)
        return
    cmd = [spy, "record", "-r", str(rate), "--pid", str(pid), "--format", fmt,
           "-o", str(out), "--nonblocking"]  # fmt: skip
    spy_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)  # py-spy attaches
        started = time.perf_counter()
        seen = read()
        seconds = time.perf_counter() - started
        print(
            f"profiled connector read (under py-spy): {len(seen.ids):,} records in"
            f" {seconds:.2f} s, {len(seen.ids) / seconds:,.0f} records/s"
        )
    finally:
        spy_proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        _, err = spy_proc.communicate(timeout=60)
        if not out.exists():
            print(f"py-spy failed: {err.decode(errors='replace')[-500:]}", file=sys.stderr)
        else:
            print(f"connector profile written to {out}")


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000, help="contacts to seed and read")
    parser.add_argument("--page-size", type=int, default=1000, help="records per page (<= 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (>= 2)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--log-level", default="INFO", help="the connector's SEEDOS_LOG_LEVEL (default INFO)"
    )
    parser.add_argument(
        "--connector-app",
        default=CONNECTOR_APP,
        help="the connector as uvicorn module:attribute, run from sdk/ (default: the example)",
    )
    parser.add_argument("--profile", type=Path, help="py-spy profile of the connector")
    parser.add_argument(
        "--profile-format",
        default="speedscope",
        choices=("speedscope", "raw", "flamegraph", "chrometrace"),
        help="py-spy output format for --profile (raw: collapsed stacks)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="copy the services' logs to /tmp")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be at least 2")
    if not 1 <= args.page_size <= 1000:
        parser.error("--page-size must be between 1 and 1000 (the CRM's and connector's limit)")
    if not 1 <= args.contacts <= 1_000_000:
        parser.error("--contacts must be between 1 and 1,000,000 (the CRM's seeding limit)")

    def interrupted(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # clean up on kill as on Ctrl-C
    info: dict[str, Any] = {
        **run_info("connector_read.py"),
        "machine": {**machine(), "httpx": httpx.__version__},
    }
    tmp = Path(tempfile.mkdtemp(prefix="seedos-bench-connector-"))
    served: dict[str, Served] = {}
    try:
        api_key = secrets.token_urlsafe(24)
        print(f"starting the demo CRM (data in {tmp}) ...", file=sys.stderr)
        served["crm"] = start(
            CRM_APP,
            factory=True,
            cwd=SDK,
            env={
                "DEMO_CRM_DATA_DIR": str(tmp / "crm"),
                "DEMO_CRM_API_KEYS": api_key,
                "DEMO_CRM_INTROSPECTION_URL": "",  # API keys only
            },
            log_path=tmp / "crm.log",
        )
        crm = served["crm"].url
        headers = {"X-API-Key": api_key}
        print(f"seeding {args.contacts:,} contacts ...", file=sys.stderr)
        started = time.perf_counter()
        seeded = httpx.post(
            crm + "/admin/seed", json={"contacts": args.contacts}, headers=headers, timeout=600
        )
        seeded.raise_for_status()
        totals = seeded.json()["totals"]
        if totals["contacts"] != args.contacts:
            raise RuntimeError(f"the CRM holds {totals['contacts']} contacts after seeding")
        info["seed_seconds"] = round(time.perf_counter() - started, 2)

        print("starting the connector ...", file=sys.stderr)
        served["connector"] = start(
            args.connector_app,
            cwd=SDK,
            env={
                "CRM_CONNECTOR_AUTH": "api_key",
                "SEEDOS_CONNECTOR_DEBUG": "0",  # no per-record schema checks (production)
                "SEEDOS_LOG_LEVEL": args.log_level,
            },
            log_path=tmp / "connector.log",
        )
        pids = {name: served[name].process.pid for name in PROCESSES}
        request = {
            "config": {"base_url": crm, "page_size": args.page_size},
            "credentials": {"api_key": api_key},
        }
        timeout = httpx.Timeout(60)
        runs: list[Run] = []
        with (
            httpx.Client(base_url=crm, headers=headers, timeout=timeout) as direct_client,
            httpx.Client(base_url=served["connector"].url, timeout=timeout) as conn_client,
        ):
            reads: dict[str, Callable[..., Read]] = {
                "direct": lambda pages=None: read_direct(direct_client, args.page_size, pages),
                "connector": lambda pages=None: read_connector(conn_client, request, pages),
            }
            for name in TARGETS:
                print(f"warming up {name} ({WARMUP_PAGES} pages) ...", file=sys.stderr)
                reads[name](WARMUP_PAGES)
            expected: list[str] | None = None
            for i in range(1, args.rounds + 1):
                for name in TARGETS:
                    run, seen = measure(name, i, reads[name], pids)
                    check(seen, args.contacts, expected, name)
                    expected = expected or seen.ids
                    runs.append(run)
                    print(
                        f"round {i}/{args.rounds} {name:9}: {run.records:,} records in"
                        f" {run.seconds:6.2f} s = {run.records_per_s:8,.0f} records/s"
                        f"  ({run.ms_per_page:.1f} ms/page; CPU s: connector"
                        f" {run.cpu_s['connector']:.2f}, crm {run.cpu_s['crm']:.2f},"
                        f" client {run.cpu_s['client']:.2f})",
                        file=sys.stderr,
                    )
            for name, s in served.items():
                if s.process.poll() is not None:
                    raise RuntimeError(f"{name} exited during the run:\n{s.logs()[-2000:]}")
            result = report(runs, args, info)
            if args.json:
                args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
                print(f"\nfigures written to {args.json}")
            if args.profile:
                profile_connector(
                    pids["connector"], args.profile, args.profile_format, reads["connector"]
                )
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; stopping ...", file=sys.stderr)
        return 130
    except (RuntimeError, httpx.HTTPError) as exc:
        print(f"\nfailed: {exc}", file=sys.stderr)
        for name, s in served.items():
            print(f"--- {name} log (end) ---\n{s.logs()[-1500:]}", file=sys.stderr)
        return 1
    finally:
        for s in served.values():
            with contextlib.suppress(Exception):
                s.stop()
        for pid in children():  # started, but interrupted before start() returned its handle
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        if args.keep_logs:
            for name in served:
                log = tmp / f"{name}.log"
                if log.exists():
                    kept = Path(tempfile.gettempdir()) / f"seedos-bench-{name}-{os.getpid()}.log"
                    shutil.copyfile(log, kept)
                    print(f"{name}'s log copied to {kept}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
