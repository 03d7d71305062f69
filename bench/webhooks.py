"""Provider webhooks (issue 18): from a signed delivery to the document, and intake throughput.

Usage (no manual setup)::

    .venv/bin/python bench/webhooks.py [--records 1000] [--pulls 50] [--concurrency 32]
                                       [--seconds 10] [--rounds 3] [--json out.json]
                                       [--profile out.txt]

One throwaway stack (bench/webhook_stack.py): an embedded PostgreSQL, the three services in
production mode, localstripe (a fake Stripe no one here wrote) and the SDK's generic connector
serving the catalog's Stripe definition, installed twice by a tenant's admin key: ``main``
(against localstripe, its webhook URL made and its signing secret set) and ``reference`` (whose
outbox cannot drain: its base URL is a closed loopback port, so the platform's own writes stay
in its document). Every delivery is a Stripe event signed with Stripe's scheme
(``connector_service.webhooks.schemes.sign``) and sent through the gateway's public path
``POST /api/v1/integrations/webhooks/<token>``.

1. **Record-carrying deliveries** (``customer.updated`` with ``data.object``): ``--records``
   sequential deliveries, the first half customers new to the document, the second half the same
   customers renamed (each object as localstripe answered it). The intake merges before it
   answers, so the round trip is the time to the document; every answer is checked by reading
   the record back (untimed). Reference, interleaved: the same record written by the tenant's
   ``PATCH /api/v1/integrations/{id}/records/customers/{id}`` (the platform's own write path) to
   the ``reference`` install. Target: <= 100 ms p99.
2. **Pull-naming deliveries** (``invoice.paid``, which pulls ``charges``): ``--pulls`` times, a
   charge made in localstripe, the event sent, the charge's record polled every 10 ms until it
   is in the document. Target: <= 1 s p99.
3. **Intake throughput**: ``--concurrency`` senders for ``--seconds`` seconds, each delivery a
   new customer, then as many requests to ``GET /api/v1/integrations/{id}`` with the admin key
   at the same concurrency (the reference: the gateway's and connector_service's own floor), for
   ``--rounds`` rounds (medians reported). Answers are counted by status, then nothing may be
   lost: every delivery taken is in ``webhook_deliveries`` and its record in the document.
   ``--profile FILE``: py-spy on connector_service during the last round. Target: >= 500
   deliveries/s.

Exit code: 0 after a complete run, whether or not the targets were met; 1 if a delivery was
refused, lost or not applied (the figures do not count then); 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
import psutil  # noqa: E402
from machine import run_info  # noqa: E402  (bench/machine.py)
from stack import cpu_seconds, cpu_since  # noqa: E402  (bench/stack.py)
from webhook_stack import (  # noqa: E402  (bench/webhook_stack.py)
    Bench,
    Failed,
    deliver,
    event,
    ok,
    running,
    set_up_hooks,
    stripe_client,
)

from common import db  # noqa: E402

RECORD_TARGET_MS = 100.0
PULL_TARGET_MS = 1000.0
RATE_TARGET = 500.0
POLL_S = 0.01
WARMUP = 20


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summary(ms: list[float]) -> dict[str, float]:
    return {"n": len(ms), "p50_ms": pct(ms, 50), "p90_ms": pct(ms, 90), "p99_ms": pct(ms, 99),
            "max_ms": max(ms)}  # fmt: skip


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await call()
    return (time.perf_counter() - started) * 1000, result


async def record_latency(b: Bench, api: aiohttp.ClientSession, hooks: aiohttp.ClientSession,
                         n: int) -> dict[str, Any]:  # fmt: skip
    """Part 1: ``n`` customer.updated deliveries, interleaved with the reference PATCHes."""
    half = max(1, n // 2)
    with stripe_client(b) as stripe:
        made = [stripe.post("/v1/customers", data={"email": f"c{i}@example.com",
                                                   "name": f"Customer {i}"}).json()
                for i in range(half + WARMUP)]  # fmt: skip
        renamed = [stripe.post(f"/v1/customers/{c['id']}", data={"name": c["name"] + " (b)"}
                               ).json() for c in made[WARMUP:]]  # fmt: skip
    objects = [*made[:WARMUP], *made[WARMUP:], *renamed]
    times: dict[str, list[float]] = {"delivery": [], "patch": []}
    for i, obj in enumerate(objects):
        _, body = event("customer.updated", obj)
        ms, (status, answer) = await timed(lambda body=body: deliver(hooks, b.hook_url, body))
        if status != 200 or answer.get("records") != 1:
            raise Failed(f"delivery answered {status}: {answer}")
        async with api.get(f"/api/v1/integrations/{b.main}/records/customers/{obj['id']}") as r:
            if (await ok(r))["name"] != obj["name"]:
                raise Failed(f"{obj['id']} answered but not in the document as delivered")
        patch = f"/api/v1/integrations/{b.reference}/records/customers/{obj['id']}"

        async def write(patch: str = patch, obj: dict = obj) -> Any:
            async with api.patch(patch, json=obj) as r:
                return await ok(r)

        patch_ms, _ = await timed(write)
        async with api.get(patch) as r:
            if (await ok(r))["name"] != obj["name"]:
                raise Failed(f"{obj['id']} PATCHed but not in the reference's document")
        if i >= WARMUP:
            times["delivery"].append(ms)
            times["patch"].append(patch_ms)
    return {"delivery": summary(times["delivery"]), "patch": summary(times["patch"]),
            "new": half, "changed": len(renamed)}  # fmt: skip


def charge(stripe: httpx.Client, amount: int) -> dict[str, Any]:
    method = stripe.post("/v1/payment_methods", data={
        "type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
        "card[exp_year]": "2034", "card[cvc]": "123"}).json()  # fmt: skip
    return stripe.post("/v1/charges", data={"amount": str(amount), "currency": "eur",
                                            "source": method["id"]}).json()  # fmt: skip


async def pull_latency(b: Bench, api: aiohttp.ClientSession, hooks: aiohttp.ClientSession,
                       n: int) -> dict[str, Any]:  # fmt: skip
    """Part 2: ``n`` invoice.paid deliveries, each timed until its new charge is a record."""
    times, answers = [], []
    with stripe_client(b) as stripe:
        for i in range(n + 2):  # the first two: warm-up (the first builds the stream's shards)
            paid = charge(stripe, 100 + i)
            invoice = {
                "id": f"in_bench{i}",
                "object": "invoice",
                "status": "paid",
                "charge": paid["id"],
                "amount_paid": paid["amount"],
                "currency": "eur",
            }
            _, body = event("invoice.paid", invoice)
            record = f"/api/v1/integrations/{b.main}/records/charges/{paid['id']}"
            started = time.perf_counter()
            status, answer = await deliver(hooks, b.hook_url, body)
            answered = time.perf_counter()
            if status != 200 or answer.get("pulls") != ["charges"]:
                raise Failed(f"invoice.paid answered {status}: {answer}")
            deadline = started + 30
            while True:
                async with api.get(record) as r:
                    await r.read()
                    if r.status == 200:
                        break
                if time.perf_counter() > deadline:
                    raise Failed(f"charge {paid['id']} not in the document 30 s after its event")
                await asyncio.sleep(POLL_S)
            if i >= 2:
                times.append((time.perf_counter() - started) * 1000)
                answers.append((answered - started) * 1000)
    conn = await db.connect(b.dsn)
    try:
        runs = await conn.fetch(
            "SELECT extract(epoch FROM finished_at - started_at) * 1000 AS ms FROM sync_runs"
            " WHERE integration_id = $1 AND kind = 'webhook' AND outcome = 'succeeded'",
            uuid.UUID(b.main),
        )
    finally:
        await conn.close()
    run_ms = [float(r["ms"]) for r in runs]
    return {"to_document": summary(times), "answer": summary(answers),
            "pull_runs": len(runs), "pull_run": summary(run_ms)}  # fmt: skip


# ------------------------------------------------------------------------------ throughput


async def hammer(
    c: int, seconds: float | None, total: int | None, send: Callable[[int], Awaitable[int | str]]
) -> tuple[float, Counter, list[float]]:
    """``c`` senders calling ``send(n)`` with n = 0, 1, ... for ``seconds`` or ``total`` calls;
    (seconds taken, answers by status, latencies in ms)."""
    counter = itertools.count()
    statuses: Counter = Counter()
    latencies: list[float] = []
    started = time.perf_counter()
    end = started + seconds if seconds else math.inf

    async def sender() -> None:
        while time.perf_counter() < end:
            n = next(counter)
            if total is not None and n >= total:
                return
            t0 = time.perf_counter()
            try:
                statuses[await send(n)] += 1
            except aiohttp.ClientError as exc:
                statuses[type(exc).__name__] += 1
            latencies.append((time.perf_counter() - t0) * 1000)

    await asyncio.gather(*(sender() for _ in range(c)))
    return time.perf_counter() - started, statuses, latencies


async def throughput(b: Bench, api: aiohttp.ClientSession, args: argparse.Namespace
                     ) -> dict[str, Any]:  # fmt: skip
    """Part 3: ``--rounds`` of the intake at ``--concurrency`` senders for ``--seconds``, each
    followed by as many reference requests; then the loss check over every round."""
    c = args.concurrency
    with stripe_client(b) as stripe:
        template = stripe.post("/v1/customers", data={"email": "t@example.com"}).json()
    taken: dict[str, str] = {}  # event id -> customer id
    rounds = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as hooks:

        def sender(run: str) -> Callable[[int], Awaitable[int | str]]:
            async def send(n: int) -> int | str:
                customer = f"cus_{run}{n:06d}"
                obj = {**template, "id": customer, "email": f"{run}{n}@example.com",
                       "name": f"Load {n}"}  # fmt: skip
                event_id, body = event("customer.updated", obj, f"evt_{run}{n:06d}")
                status, answer = await deliver(hooks, b.hook_url, body)
                if status == 200 and answer.get("taken"):
                    taken[event_id] = customer
                    return status
                return f"{status} {answer.get('reason') or answer.get('code')}"

            return send

        await hammer(c, 1.0, None, sender("warm" + secrets.token_hex(3)))
        taken.clear()
        for n in range(args.rounds):
            profile = args.profile if n == args.rounds - 1 else None  # the largest document
            intake = await intake_round(b, c, args.seconds, sender(f"r{n}{secrets.token_hex(3)}"),
                                        profile)  # fmt: skip
            reference = await reference_round(b, api, c, intake["sent"])
            rounds.append({"intake": intake, "reference": reference})
            print(f"   round {n + 1}: intake {intake['per_s']:.0f}/s, reference"
                  f" {reference['per_s']:.0f}/s", file=sys.stderr)  # fmt: skip
    statuses: Counter = Counter()
    for r in rounds:
        statuses.update(r["intake"]["statuses"])
    return {
        "concurrency": c, "rounds": rounds, "statuses": dict(statuses), "taken": len(taken),
        "per_s": statistics.median(r["intake"]["per_s"] for r in rounds),
        "reference_per_s": statistics.median(r["reference"]["per_s"] for r in rounds),
        "ratio": statistics.median(r["intake"]["per_s"] / r["reference"]["per_s"]
                                   for r in rounds),
        "lost": await lost_deliveries(b, api, taken),
    }  # fmt: skip


async def intake_round(b: Bench, c: int, seconds: float,
                       send: Callable[[int], Awaitable[int | str]], profile: Path | None
                       ) -> dict[str, Any]:  # fmt: skip
    shards = await shard_counts(b)
    before, cpu0, machine0 = cpu_seconds(b.pids), time.process_time(), psutil.cpu_times()
    spy = start_profile(b.pids["connector_service"], seconds, profile) if profile else None
    elapsed, statuses, latencies = await hammer(c, seconds, None, send)
    cpu = cpu_since(b.pids, before)
    cpu["bench (client)"] = time.process_time() - cpu0
    idle = idle_share(machine0)
    if spy is not None:
        spy.wait(timeout=seconds + 60)
    sent = sum(statuses.values())
    after = await shard_counts(b)
    return {
        "shards": after["live"], "splits": after["retired"] - shards["retired"],
        "seconds": elapsed, "sent": sent, "statuses": dict(statuses),
        "per_s": statuses.get(200, 0) / elapsed, "latency": summary(latencies),
        "cpu_ms_per_delivery": {k: v * 1000 / max(1, sent) for k, v in cpu.items()},
        "stack_cpu_share": sum(cpu.values()) / (elapsed * psutil.cpu_count()),
        "machine_idle_share": idle,
    }  # fmt: skip


async def shard_counts(b: Bench) -> dict[str, int]:
    """The main install's customers shards: live, and retired (split)."""
    conn = await db.connect(b.dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE retired_at IS NULL) AS live,"
            " count(*) FILTER (WHERE retired_at IS NOT NULL) AS retired FROM sync_shards"
            " WHERE integration_id = $1 AND stream = 'customers'", uuid.UUID(b.main))  # fmt: skip
    finally:
        await conn.close()
    return dict(row)


async def reference_round(b: Bench, api: aiohttp.ClientSession, c: int, count: int
                          ) -> dict[str, Any]:  # fmt: skip
    path = f"/api/v1/integrations/{b.main}"

    async def cheap(_n: int) -> int:
        async with api.get(path) as r:
            await r.read()
            return r.status

    elapsed, statuses, latencies = await hammer(c, None, count, cheap)
    return {"path": "GET /api/v1/integrations/{id}", "seconds": elapsed,
            "statuses": dict(statuses), "latency": summary(latencies),
            "per_s": statuses.get(200, 0) / elapsed}  # fmt: skip


async def lost_deliveries(b: Bench, api: aiohttp.ClientSession, taken: dict[str, str]) -> dict:
    """Deliveries answered as taken but missing from webhook_deliveries, and their records
    missing from the document."""
    conn = await db.connect(b.dsn)
    try:
        stored = await conn.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE integration_id = $1"
            " AND delivery_id = ANY($2::text[])", uuid.UUID(b.main), list(taken))  # fmt: skip
    finally:
        await conn.close()
    seen: set[str] = set()
    cursor = None
    while True:
        params = {"stream": "customers", "limit": "200", **({"cursor": cursor} if cursor else {})}
        async with api.get(f"/api/v1/integrations/{b.main}/records", params=params) as r:
            page = await ok(r)
        seen.update(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    return {"not_in_webhook_deliveries": len(taken) - stored,
            "not_in_document": len(set(taken.values()) - seen)}  # fmt: skip


def idle_share(before: Any) -> float:
    """The machine's idle share (all CPUs) since ``before`` (``psutil.cpu_times()``)."""
    after = psutil.cpu_times()
    spent = {f: getattr(after, f) - getattr(before, f) for f in after._fields}
    return (spent["idle"] + spent.get("iowait", 0.0)) / max(1e-9, sum(spent.values()))


def start_profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("--profile: py-spy not found (.venv/bin/pip install py-spy)", file=sys.stderr)
        return None
    fmt = "speedscope" if out.suffix == ".json" else "raw"
    return subprocess.Popen([spy, "record", "-d", str(math.ceil(seconds)), "-r", "200", "--pid",
                             str(pid), "--format", fmt, "-o", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL)  # fmt: skip


# ------------------------------------------------------------------------------ the report


async def measure(b: Bench, args: argparse.Namespace) -> dict[str, Any]:
    api_headers = {"Authorization": f"Bearer {b.api_key}"}
    async with (aiohttp.ClientSession(b.urls["gateway"], headers=api_headers) as api,
                aiohttp.ClientSession() as hooks):  # fmt: skip
        await set_up_hooks(b, api)
        found: dict[str, Any] = {}
        if args.records:
            print(f"1. {args.records} record-carrying deliveries ...", file=sys.stderr)
            found["records"] = await record_latency(b, api, hooks, args.records)
        if args.pulls:
            print(f"2. {args.pulls} pull-naming deliveries ...", file=sys.stderr)
            found["pulls"] = await pull_latency(b, api, hooks, args.pulls)
        if args.seconds and args.rounds:
            print(f"3. intake at {args.concurrency} senders, {args.rounds} x {args.seconds:g} s"
                  " ...", file=sys.stderr)  # fmt: skip
            found["throughput"] = await throughput(b, api, args)
    return found


def met(ok_: bool) -> str:
    return "met" if ok_ else "MISSED"


def report_records(r: dict[str, Any]) -> None:
    d, ref = r["delivery"], r["patch"]
    print(f"1. record-carrying deliveries ({d['n']}: {r['new']} new customers, {r['changed']}"
          f" changed), delivery to document: p50 {d['p50_ms']:.1f} ms, p99 {d['p99_ms']:.1f} ms,"
          f" max {d['max_ms']:.1f} ms; target p99 <= {RECORD_TARGET_MS:g} ms:"
          f" {met(d['p99_ms'] <= RECORD_TARGET_MS)}")  # fmt: skip
    print(f"   reference, the same records by PATCH .../records/customers/{{id}}: p50"
          f" {ref['p50_ms']:.1f} ms, p99 {ref['p99_ms']:.1f} ms; a delivery takes"
          f" {d['p50_ms'] / ref['p50_ms']:.2f}x (p50),"
          f" {d['p99_ms'] / ref['p99_ms']:.2f}x (p99)")  # fmt: skip


def report_pulls(p: dict[str, Any]) -> None:
    td, a, run = p["to_document"], p["answer"], p["pull_run"]
    print(f"2. pull-naming deliveries ({td['n']} invoice.paid, each pulling its new charge):"
          f" delivery to document p50 {td['p50_ms']:.0f} ms, p99 {td['p99_ms']:.0f} ms, max"
          f" {td['max_ms']:.0f} ms; target p99 <= {PULL_TARGET_MS:g} ms:"
          f" {met(td['p99_ms'] <= PULL_TARGET_MS)}")  # fmt: skip
    print(f"   the delivery's answer p50 {a['p50_ms']:.1f} ms; the pull runs ({p['pull_runs']})"
          f" p50 {run['p50_ms']:.0f} ms, p99 {run['p99_ms']:.0f} ms; polled every"
          f" {POLL_S * 1000:g} ms")  # fmt: skip


def report_throughput(t: dict[str, Any]) -> None:
    lost = t["lost"]
    print(f"3. intake: {t['per_s']:.0f} deliveries/s at {t['concurrency']} senders (median of"
          f" {len(t['rounds'])} rounds; answers {t['statuses']}); target >= {RATE_TARGET:g}/s:"
          f" {met(t['per_s'] >= RATE_TARGET)}")  # fmt: skip
    print(f"   lost: {lost['not_in_webhook_deliveries']} not in webhook_deliveries,"
          f" {lost['not_in_document']} not in the document (of {t['taken']} taken)")  # fmt: skip
    print(f"   reference, {t['rounds'][0]['reference']['path']} as many times at the same"
          f" concurrency: {t['reference_per_s']:.0f}/s; the intake runs at {t['ratio']:.2f}x"
          " that (medians)")  # fmt: skip
    for n, r in enumerate(t["rounds"], 1):
        i, ref = r["intake"], r["reference"]
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in i["cpu_ms_per_delivery"].items() if v >= 0.01)
        print(f"   round {n}: {i['per_s']:.0f}/s ({i['sent']} in {i['seconds']:.1f} s, latency"
              f" p50 {i['latency']['p50_ms']:.0f} ms, p99 {i['latency']['p99_ms']:.0f} ms);"
              f" reference {ref['per_s']:.0f}/s (p50 {ref['latency']['p50_ms']:.0f} ms);"
              f" CPU ms per delivery: {cpu}; the stack used {i['stack_cpu_share']:.0%} of the"
              f" CPU time, idle {i['machine_idle_share']:.0%}; {i['splits']} shard splits"
              f" ({i['shards']} shards after)")  # fmt: skip


def report(info: dict[str, Any]) -> None:
    print(f"\n{info['date']}  {info['command']}\n{info['machine']}")
    for part, show in (("records", report_records), ("pulls", report_pulls),
                       ("throughput", report_throughput)):  # fmt: skip
        if part in info:
            show(info[part])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--pulls", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3, help="of the intake and its reference")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--profile", type=Path,
                        help="py-spy profile of connector_service during the intake run"
                             " (.json: speedscope, otherwise raw)")  # fmt: skip
    args = parser.parse_args()

    def interrupted(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # clean up on kill as on Ctrl-C
    info: dict[str, Any] = {**run_info("webhooks.py")}
    tmp = Path(tempfile.mkdtemp(prefix="seedos-bench-webhooks-"))
    try:
        with running(tmp) as b:
            info.update(asyncio.run(measure(b, args)))
    except KeyboardInterrupt:
        print("\ninterrupted; stopping ...", file=sys.stderr)
        return 130
    except Failed as failure:
        print(f"\nthe run does not count: {failure}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(info)
    if args.json:
        args.json.write_text(json.dumps(info, indent=1, default=str) + "\n")
    rate = info.get("throughput")
    if rate and (any(rate["lost"].values()) or set(rate["statuses"]) != {200}):
        return 1  # a delivery refused or lost: the figures do not count
    return 0


if __name__ == "__main__":
    sys.exit(main())
