"""Reconnecting after offline record edits: from joining the shard's room again to fully merged
records, both ways (issue 16: 1,000 offline edits merged in <= 1 s on loopback).

Usage (no manual setup; installs the npm packages of bench/ws_load on first use)::

    .venv/bin/python bench/offline_merge.py [--contacts 2000] [--edits 1000] [--online 100]
                                            [--rounds 5] [--json out.json]

The sync stack of bench/stack.py starts with ``--contacts`` contacts and runs its first sync, so
the install is sharded (~310 records a shard). The contacts shard holding the most of the first
1,000 contacts is the room. ``bench/ws_load/merge.mjs`` (unmodified ``yjs`` and ``y-websocket``,
the dashboard's own packages) then, each round, through the gateway with the tenant's key:

* keeps the room's document as a device would (y-indexeddb holds the same state in the
  browser), disconnects, makes ``--edits`` edits (phone, first and last name of the shard's
  records, each edit its own transaction) while ``--online`` edits of other records are made
  by someone connected throughout, then joins again: **merge** is the time from joining until
  the client holds every online edit and the connected observer every offline edit (the server
  broadcasts an update once it is committed to PostgreSQL);
* **reference**: the same join with no offline edit (the handshake and the document alone);
* **online**: the same edits made while connected, one update each, until the observer holds
  them all (how they reach the server without going offline).

The figures are medians over rounds; merge is also given as a ratio to online (same run).
Exit code 0 after a complete run whether or not the target was met; 1 if a run failed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import stack as stack_  # noqa: E402  (bench/stack.py)
from machine import run_info  # noqa: E402  (bench/machine.py)
from sync_ws import LOAD, ensure_modules, held_by_shard  # noqa: E402  (bench/sync_ws.py)

TARGET_MS = 1000


def room_keys(stack: stack_.Stack) -> tuple[str, list[str]]:
    """The contacts shard holding the most of the first 1,000 contacts, and their keys."""
    held = held_by_shard(stack)
    shard = max(held, key=lambda s: len(held[s]))
    return shard, held[shard]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--edits", type=int, default=1000)
    parser.add_argument("--online", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    node = ensure_modules()
    info: dict[str, Any] = {**run_info("offline_merge.py")}
    runs: list[dict[str, Any]] = []
    with stack_.running(args.contacts, companies=10) as stack:
        print("first sync ...", file=sys.stderr)
        stack_.first_sync(stack)
        shard, keys = room_keys(stack)
        info.update(shard=shard, records_in_room=len(keys))
        url = stack.urls["gateway"].replace("http", "ws", 1) + stack.base + "/sync"
        with tempfile.NamedTemporaryFile("w", suffix=".json", dir=LOAD) as file:
            json.dump(keys, file)
            file.flush()
            cmd = [node, "merge.mjs", "--url", url, "--shard", shard, "--keys", file.name,
                   "--edits", str(args.edits), "--online", str(args.online),
                   "--rounds", str(args.rounds),
                   "--header", f"Authorization: Bearer {stack.api_key}"]  # fmt: skip
            done = subprocess.run(cmd, cwd=LOAD, capture_output=True, text=True, timeout=600)
        runs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not runs:
            print(f"merge.mjs failed ({done.returncode}): {done.stderr[-2000:]}", file=sys.stderr)
            return 1
    report(runs, info, args)
    return 0


def report(runs: list[dict[str, Any]], info: dict[str, Any], args: argparse.Namespace) -> None:
    def median(kind: str) -> float:
        return statistics.median(r["ms"] for r in runs if r["kind"] == kind)

    merge, reference, online = median("merge"), median("reference"), median("online")
    doc_kb = statistics.median(r["bytes"] for r in runs if r["kind"] == "merge") / 1024
    summary = {
        **info,
        "edits": args.edits, "online_edits": args.online, "rounds": args.rounds,
        "merge_ms": round(merge, 1), "reference_join_ms": round(reference, 1),
        "online_ms": round(online, 1), "merge_vs_online": round(merge / online, 3),
        "document_kb": round(doc_kb, 1), "target_ms": TARGET_MS, "met": merge <= TARGET_MS,
        "runs": runs,
    }  # fmt: skip
    print(f"{info['date']}  {info['command']}\n{info['machine']}")
    print(f"room: {info['records_in_room']} records, document {doc_kb:.0f} KiB")
    print(f"{'':>10} {'median ms':>10}   each round (ms)")
    for kind in ("merge", "reference", "online"):
        each = ", ".join(f"{r['ms']:.0f}" for r in runs if r["kind"] == kind)
        print(f"{kind:>10} {median(kind):>10.1f}   {each}")
    print(f"merge of {args.edits} offline edits (+{args.online} online): {merge:.0f} ms"
          f" (target <= {TARGET_MS} ms: {'met' if merge <= TARGET_MS else 'MISSED'});"
          f" {merge / online:.2f}x the same edits sent online")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    sys.exit(main())
