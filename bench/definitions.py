"""Declarative connectors (issue 17): loading a definition, and reading through the generic
connector against the hand-written example on the same demo CRM.

Usage (no manual setup)::

    .venv/bin/python bench/definitions.py [--contacts 100000] [--page-size 1000] [--rounds 3]
                                          [--loads 50] [--json out.json]

* **Load and compile** ``sdk/examples/definitions/demo-crm.yaml`` (parse, check against the JSON
  Schema, compile every template and selector, build the connector): the median of ``--loads``
  runs in this process. Target: <= 20 ms. Same-run reference: parsing the same definition from
  JSON with the standard library (the floor for reading the file at all).
* **Read throughput**: the demo CRM (``--contacts`` contacts) read through the hand-written example
  connector and through the generic connector running the demo CRM's definition, each over its
  contract from cursor null while ``has_more``, interleaved for ``--rounds`` rounds (the reads of
  bench/connector_read.py; both must see every contact once). Target: generic >= 0.9x example.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from connector_read import CONNECTOR_APP, CRM_APP, SDK, check, measure, read_connector
from machine import run_info  # bench/machine.py

from seedos_sdk.declarative import build, load
from seedos_sdk.testing import Served, start

DEFINITION = SDK / "examples" / "definitions" / "demo-crm.yaml"
LOAD_TARGET_MS = 20.0
READ_TARGET = 0.9
TARGETS = ("example", "definition")


def load_times(loads: int) -> dict[str, float]:
    text = DEFINITION.read_bytes()
    as_json = json.dumps(yaml.safe_load(text))
    compiled, parsed = [], []
    for _ in range(loads):
        started = time.perf_counter()
        build(load(text))
        compiled.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        json.loads(as_json)
        parsed.append((time.perf_counter() - started) * 1000)
    return {
        "load_compile_ms": statistics.median(compiled),
        "load_compile_p95_ms": sorted(compiled)[int(0.95 * (len(compiled) - 1))],
        "json_parse_ms": statistics.median(parsed),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loads", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    info: dict[str, Any] = {**run_info("definitions.py")}
    loaded = load_times(args.loads)
    tmp = Path(tempfile.mkdtemp(prefix="seedos-bench-definitions-"))
    served: dict[str, Served] = {}
    runs = []
    try:
        key = secrets.token_urlsafe(24)
        served["crm"] = start(CRM_APP, factory=True, cwd=SDK, log_path=tmp / "crm.log", env={
            "DEMO_CRM_DATA_DIR": str(tmp / "crm"), "DEMO_CRM_API_KEYS": key,
            "DEMO_CRM_INTROSPECTION_URL": "",
        })  # fmt: skip
        print(f"seeding {args.contacts:,} contacts ...", file=sys.stderr)
        httpx.post(served["crm"].url + "/admin/seed", json={"contacts": args.contacts},
                   headers={"X-API-Key": key}, timeout=600).raise_for_status()  # fmt: skip
        quiet = {"SEEDOS_CONNECTOR_DEBUG": "0", "SEEDOS_LOG_LEVEL": "WARNING"}
        served["example"] = start(CONNECTOR_APP, cwd=SDK, log_path=tmp / "example.log",
                                  env={"CRM_CONNECTOR_AUTH": "api_key", **quiet})  # fmt: skip
        served["generic"] = start(
            "seedos_sdk.declarative.server:app_factory", factory=True, cwd=SDK,
            log_path=tmp / "generic.log",
            env={"SEEDOS_DEFINITIONS": str(DEFINITION.parent), **quiet,
                 "SEEDOS_EGRESS_ALLOWED_NETWORKS": "127.0.0.0/8"},  # the demo CRM's loopback
        )  # fmt: skip
        listing = httpx.get(served["generic"].url + "/definitions").json()["items"]
        path = next(d["path"] for d in listing if d["name"] == "demo-crm-declarative")
        request = {"config": {"base_url": served["crm"].url, "page_size": args.page_size},
                   "credentials": {"api_key": key}}  # fmt: skip
        urls = {"example": served["example"].url, "definition": served["generic"].url + path}
        pids = {"example": served["example"].process.pid,
                "definition": served["generic"].process.pid}  # fmt: skip
        clients = {t: httpx.Client(base_url=urls[t], timeout=60) for t in TARGETS}
        with contextlib.ExitStack() as stack:
            for client in clients.values():
                stack.enter_context(client)
            for target in TARGETS:
                read_connector(clients[target], request, 10)  # warm up
            expected = None
            for n in range(1, args.rounds + 1):
                for target in TARGETS:
                    run, seen = measure(target, n, lambda t=target: read_connector(
                        clients[t], request), {"connector": pids[target]})  # fmt: skip
                    check(seen, args.contacts, expected, target)
                    expected = expected or seen.ids
                    runs.append(run)
                    print(f"round {n} {target:10}: {run.records_per_s:10,.0f} records/s",
                          file=sys.stderr)  # fmt: skip
    finally:
        for s in served.values():
            with contextlib.suppress(Exception):
                s.stop()
    rps = {t: statistics.median(r.records_per_s for r in runs if r.target == t) for t in TARGETS}
    cpu = {t: statistics.median(r.cpu_s["connector"] for r in runs if r.target == t)
           for t in TARGETS}  # fmt: skip
    ratio = rps["definition"] / rps["example"]
    print(f"{info['date']}  {info['command']}\n{info['machine']}")
    print(f"load and compile demo-crm.yaml: {loaded['load_compile_ms']:.1f} ms median"
          f" (p95 {loaded['load_compile_p95_ms']:.1f} ms; target <= {LOAD_TARGET_MS:g} ms:"
          f" {'met' if loaded['load_compile_ms'] <= LOAD_TARGET_MS else 'MISSED'});"
          f" the same definition parsed from JSON: {loaded['json_parse_ms']:.2f} ms")  # fmt: skip
    print(f"read {args.contacts:,} contacts: example {rps['example']:,.0f} records/s,"
          f" definition {rps['definition']:,.0f} records/s = {ratio:.2f}x (target >="
          f" {READ_TARGET}x: {'met' if ratio >= READ_TARGET else 'MISSED'}); connector CPU s per"
          f" read: example {cpu['example']:.2f}, definition {cpu['definition']:.2f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({**info, **loaded, "records_per_s": rps, "ratio": ratio,
                                         "cpu_s": cpu}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
