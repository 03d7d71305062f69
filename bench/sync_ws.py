"""WebSocket sync throughput: updates per second delivered, against @y/websocket-server.

Usage (no manual setup; installs the npm packages of bench/ws_load on first use)::

    .venv/bin/python bench/sync_ws.py [--writers 50] [--seconds 10] [--rounds 2] [--json out.json]

The sync stack of bench/stack.py starts (a small CRM, the services, an installed connector with
its first sync done). ``bench/ws_load/load.mjs`` then connects ``--writers`` plain WebSocket
clients that each change their own record every 10 ms with Yjs update messages made by a local
``yjs`` document, and one unmodified ``y-websocket`` client that observes; the figure is the
number of writer updates whose effect reached the observer, per second (see load.mjs). It runs,
interleaved for ``--rounds`` rounds, against:

* *reference*: ``@y/websocket-server@0.1.1`` (in memory, no persistence) on this machine;
* *direct*: connector_service's ``sync/ws`` with a minted internal token (persistence on);
* *gateway*: the same through the gateway with the tenant's API key.

Target (from the issue): direct >= 1.0x reference; the gateway figure is reported beside it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import stack as stack_  # noqa: E402  (bench/stack.py)
from machine import machine  # noqa: E402  (bench/machine.py)

from seedos_sdk.testing import free_port  # noqa: E402

LOAD = ROOT / "bench" / "ws_load"
TARGETS = ("reference", "direct", "gateway")


def ensure_modules() -> str:
    node = shutil.which("node")
    if node is None:
        sys.exit("node is needed (Node 20)")
    if not (LOAD / "node_modules" / "@y" / "websocket-server").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=LOAD,
                       check=True)  # fmt: skip
    return node


def load(node: str, url: str, args: argparse.Namespace, header: str | None) -> dict[str, Any]:
    cmd = [node, "load.mjs", "--url", url, "--room", "ws", "--writers", str(args.writers),
           "--seconds", str(args.seconds), "--warmup", "3"]  # fmt: skip
    if header:
        cmd += ["--header", header]
    done = subprocess.run(cmd, cwd=LOAD, capture_output=True, text=True,
                          timeout=args.seconds + 90)  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"load.mjs failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(lines[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    node = ensure_modules()
    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([".venv/bin/python", "bench/sync_ws.py", *sys.argv[1:]]),
        "machine": machine(),
    }
    port = free_port()
    reference = subprocess.Popen(
        [node, "node_modules/@y/websocket-server/src/server.js"], cwd=LOAD,
        env={"PORT": str(port), "HOST": "127.0.0.1", "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in TARGETS}
    try:
        with stack_.running(1000, companies=10) as stack:
            r = stack.api.post(stack.base + "/sync/run")
            r.raise_for_status()
            while stack.api.get(stack.base + "/sync/status").json()["running"]:
                time.sleep(0.1)
            path = f"/api/v1/integrations/{stack.integration_id}/sync"
            urls = {
                "reference": (f"ws://127.0.0.1:{port}", None),
                "direct": (stack.urls["connector_service"].replace("http", "ws") + path,
                           f"Authorization: Bearer {stack.internal_token}"),
                "gateway": (stack.urls["gateway"].replace("http", "ws") + path,
                            f"Authorization: Bearer {stack.api_key}"),
            }  # fmt: skip
            for n in range(args.rounds):
                for target in TARGETS:
                    url, header = urls[target]
                    print(f"round {n + 1}: {target} ...", file=sys.stderr)
                    runs[target].append(load(node, url, args, header))
            with httpx.Client() as client:  # the document kept what the writers wrote
                status = client.get(stack.urls["connector_service"] + "/metrics").text
            info["sync_metrics_sample"] = [
                line for line in status.splitlines() if line.startswith("seedos_sync_")
            ][:20]
    finally:
        reference.terminate()
        reference.wait(10)
    report(runs, info, args)
    return 0


def report(runs: dict[str, list[dict[str, Any]]], info: dict[str, Any], args: Any) -> None:
    med = {t: statistics.median(r["delivered_per_s"] for r in runs[t]) for t in TARGETS}
    sent = {t: statistics.median(r["sent_per_s"] for r in runs[t]) for t in TARGETS}
    msgs = {t: statistics.median(r["messages_per_s"] for r in runs[t]) for t in TARGETS}
    ratio = med["direct"] / med["reference"] if med["reference"] else float("nan")
    via_gateway = med["gateway"] / med["reference"] if med["reference"] else float("nan")
    for t in TARGETS:
        print(f"{t:9}: {med[t]:7.0f} updates/s delivered to the observer (writers sent"
              f" {sent[t]:.0f}/s; the observer got {msgs[t]:.0f} messages/s)")  # fmt: skip
    print(f"direct / reference: {ratio:.2f}x (target >= 1.0: {'met' if ratio >= 1 else 'MISSED'});"
          f" through the gateway: {via_gateway:.2f}x")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({**info, "runs": runs, "median_delivered": med,
                                         "ratio_direct": ratio, "ratio_gateway": via_gateway},
                                        indent=2))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
