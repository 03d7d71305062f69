"""Work queued offline, replayed through ``POST /api/v1/integrations/sync-offline``.

Usage (no manual setup)::

    .venv/bin/python bench/offline_batch.py [--actions 1000] [--json out.json]

The stack of bench/stack.py (the demo CRM, one install of its connector). A client's queue of
``--actions`` items (setup-progress changes and settings changes, alternately: operations that
touch only the platform, so the figure is the replay's own cost, not a third party's) is sent in
batches of 500, timed from the first request to the last answer, then sent again (every item
answered as a duplicate). Reference, same run: the same number of the same API calls made one
at a time through the gateway with the tenant's key (what a client replaying its queue itself
would take). Target (issue 16): 1,000 queued actions applied exactly once in <= 2 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import stack as stack_  # noqa: E402  (bench/stack.py)
from machine import run_info  # noqa: E402  (bench/machine.py)

BATCH = 500
TARGET_S = 2.0


def items(base: str, count: int) -> list[dict[str, Any]]:
    client_id = "bench-" + secrets.token_hex(6)
    now = dt.datetime.now(dt.UTC).isoformat()
    out = []
    for n in range(1, count + 1):
        if n % 2:
            method, path, body = "PUT", base + "/setup-progress", {"done": [n % 5]}
        else:
            method, path, body = "PATCH", base, {"sync_interval_seconds": 60 + n % 7}
        out.append({"client_id": client_id, "seq": n, "idempotency_key": secrets.token_hex(8),
                    "client_ts": now, "method": method, "path": path, "body": body})  # fmt: skip
    return out


def replay(api: Any, queue: list[dict[str, Any]]) -> tuple[float, dict[str, int]]:
    counts: dict[str, int] = {}
    started = time.perf_counter()
    for start in range(0, len(queue), BATCH):
        batch = {"items": queue[start : start + BATCH]}
        r = api.post("/api/v1/integrations/sync-offline", json=batch)
        r.raise_for_status()
        for result in r.json()["results"]:
            counts[result["outcome"]] = counts.get(result["outcome"], 0) + 1
    return time.perf_counter() - started, counts


def direct(api: Any, queue: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    for item in queue:
        api.request(item["method"], item["path"], json=item["body"]).raise_for_status()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actions", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    info: dict[str, Any] = {
        **run_info("offline_batch.py"),
    }
    with stack_.running(10, companies=1) as stack:
        base = stack.base
        direct(stack.api, items(base, 50))  # warm up
        info["direct_s"] = direct(stack.api, items(base, args.actions))
        queue = items(base, args.actions)
        info["batch_s"], info["first"] = replay(stack.api, queue)
        info["again_s"], info["again"] = replay(stack.api, queue)
    print(f"\n{info['date']} on {info['machine']['cpus']} CPUs ({info['machine']['cpu_model']})")
    print(
        f"{args.actions} queued actions through sync-offline: {info['batch_s']:.2f} s"
        f" ({info['first']}); target <= {TARGET_S:.0f} s:"
        f" {'met' if info['batch_s'] <= TARGET_S else 'MISSED'}"
    )
    print(f"  the same batch again: {info['again_s']:.2f} s ({info['again']})")
    print(
        f"  reference, the same calls one at a time through the gateway: {info['direct_s']:.2f} s"
        f"; the batch takes {info['batch_s'] / info['direct_s']:.2f}x that"
    )
    if args.json:
        args.json.write_text(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
