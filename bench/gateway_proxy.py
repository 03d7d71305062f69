"""Gateway proxy overhead: the same request through the gateway and straight to connector_service.

Usage (no manual setup; installs wrk from Debian's packages when run as root)::

    .venv/bin/python bench/gateway_proxy.py [--duration 10] [--connections 50] [--rounds 3]
                                            [--json out.json] [--profile gw.speedscope.json]

A throwaway embedded PostgreSQL is created, migrated and seeded; a tenant gets an admin API key
and 20 installed connectors; the three services run as real uvicorn processes (production mode,
INFO logs unless --log-level says otherwise) on free loopback ports, with rate limiting in
place. wrk then sends ``GET /api/v1/integrations?limit=20``

* ``direct``: straight to connector_service with a pre-minted internal token,
* ``gateway``: through the gateway with the API key,
* ``session``: through the gateway with a signed-in person's session cookie
  (``__Host-seedos_session``, a member of the same tenant with the same role),
* ``jwt``: through the gateway with a Supabase-shaped access token (ES256, app_metadata tenant
  and role, an authoritative issuer whose JWKS this process serves: bench/gateway_targets.py),
* ``baseline``: through the gateway of an earlier revision (``--baseline-rev``, by default the
  last commit before issue 13) with the API key, to its own connector_service of that revision:
  "today's API-key path",

at 1 connection (latency percentiles) and at N connections (requests per second), interleaved
for several rounds (the gateway targets rotate places); the medians are compared against the
issues' targets: added p50 <= 1 ms and p99 <= 3 ms at 1 client over direct (issue 2); each of
API key, session and JWT <= 0.1 ms p50 above the baseline's API-key path, and >= 0.9x direct
throughput at 50 clients (issue 13). The figures are ratios and differences against the same
run, since the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from gateway_targets import (  # noqa: E402  (bench/gateway_targets.py)
    BASELINE_REVISION,
    SupabaseIssuer,
    start_baseline,
    unpack_revision,
)
from machine import cpu_seconds, run_info  # noqa: E402  (bench/machine.py)
from services import loopback_urls, service_env, start_all  # noqa: E402  (bench/services.py)

from common import db, embedded, migrate  # noqa: E402
from common.internal_auth import Principal  # noqa: E402
from common.roles import Role  # noqa: E402
from gateway.api_keys import service as api_keys  # noqa: E402
from gateway.sessions import cookies  # noqa: E402
from gateway.sessions import service as sessions  # noqa: E402
from gateway.tenants import service as tenants  # noqa: E402
from gateway.users import repository as users_repository  # noqa: E402
from gateway.users import service as users  # noqa: E402
from seedos_cli import demo  # noqa: E402
from seedos_cli.deployment_keys import ServiceKeys  # noqa: E402
from seedos_cli.supervisor import Supervisor  # noqa: E402

PATH = "/api/v1/integrations?limit=20"
ROWS = 20
WARMUP_SECONDS = 2
TARGET_ADDED_P50_MS = 1.0
TARGET_ADDED_P99_MS = 3.0
TARGET_RPS_RATIO = 0.9  # issue 13 (issue 2 asked 0.7)
TARGET_OVER_BASELINE_P50_MS = 0.1  # each credential over the earlier API-key path, issue 13
CREDENTIALS = ("gateway", "session", "jwt")  # through this revision's gateway
TARGETS = ("direct", "baseline", *CREDENTIALS)
BENCH_ISSUER = "https://bench.invalid"  # the session's provider: nothing is asked of it
MARK = "WRKJSON "

# wrk calls done() once at the end; latencies are in microseconds.
DONE_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,"non2xx":%d,"connect":%d,"read":%d,'
    .. '"write":%d,"timeout":%d,"mean_us":%.1f,"max_us":%d,"p50_us":%d,"p90_us":%d,'
    .. '"p99_us":%d,"p999_us":%d}\\n',
    "MARK", summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read,
    e.write, e.timeout, latency.mean, latency.max, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
""".replace("MARK", MARK)


# --------------------------------------------------------------------------- environment


def ensure_wrk() -> str:
    if path := shutil.which("wrk"):
        return path
    if os.geteuid() != 0:
        sys.exit("wrk is not installed: run `sudo apt-get install -y wrk` (Debian's package)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    print("wrk not found: installing it with apt-get ...", file=sys.stderr)
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL, check=False)
        subprocess.run(install, env=env, stdout=subprocess.DEVNULL, check=False)
    if path := shutil.which("wrk"):
        return path
    sys.exit("could not install wrk with apt-get; install it and run again")


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0].strip() if first else "unknown"


# --------------------------------------------------------------------------- data


@dataclass
class Prepared:
    tenant_id: Any
    slug: str
    api_key: str
    session: str  # the session cookie's value


async def prepare_database(dsn: str) -> Prepared:
    conn = await db.connect(dsn)
    try:
        await migrate.apply(conn)
        await demo.seed(conn)
        slug = f"bench-{secrets.token_hex(4)}"
        async with conn.transaction():
            tenant = await tenants.create(
                conn, slug=slug, name="Bench Company", actor="system:bench"
            )
            key = await api_keys.create(
                conn, tenant_id=tenant["id"], name="bench", role=Role.admin, created_by="bench"
            )
            catalog = await conn.fetch(
                "SELECT id, service_identifier, version FROM marketplace_connectors"
                " ORDER BY service_identifier LIMIT $1",
                ROWS,
            )
            for i in range(ROWS):
                entry = catalog[i % len(catalog)] if catalog else None
                await conn.execute(
                    "INSERT INTO integration_connectors (tenant_id, marketplace_connector_id,"
                    " connector_name, service_name, version, config, status, created_by)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, 'bench')",
                    tenant["id"],
                    entry["id"] if entry else None,
                    f"Bench connector {i + 1}",
                    entry["service_identifier"] if entry else f"service-{i + 1}",
                    entry["version"] if entry else "1.0.0",
                    {"region": "eu-west-1", "workspace": f"ws-{i + 1}", "sync": True},
                    ("active", "pending", "error", "disabled")[i % 4],
                )
            # a person who signed in: an admin of the same tenant, like the API key
            user, _ = await users.sign_in(
                conn,
                users.Identity(
                    issuer=BENCH_ISSUER, subject=f"bench-{slug}", provider="bench",
                    email=f"admin@{slug}.example.com", email_verified=True, name="Bench Admin",
                ),
            )  # fmt: skip
            await users_repository.add_membership(
                conn, tenant_id=tenant["id"], user_id=user["id"], role="admin", created_by="bench"
            )
            issued = await sessions.start(
                conn, user_id=user["id"], tenant_id=tenant["id"], role="admin", provider="bench",
                issuer=BENCH_ISSUER, timeouts=sessions.Timeouts(1800, 43200),
            )  # fmt: skip
    finally:
        await conn.close()
    return Prepared(tenant_id=tenant["id"], slug=slug, api_key=key["key"], session=issued.secret)


def bearer(token: str) -> str:
    return f"Authorization: Bearer {token}"


def session_cookie(secret: str) -> str:
    return f"Cookie: {cookies.SESSION}={secret}"


def header_dict(header: str) -> dict[str, str]:
    name, _, value = header.partition(": ")
    return {name: value}


# --------------------------------------------------------------------------- wrk


@dataclass
class Run:
    target: str  # "direct" | "gateway" | "session"
    kind: str  # "latency" | "throughput"
    connections: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_ms: float
    requests: int
    non2xx: int
    socket_errors: int
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)


@dataclass
class Wrk:
    binary: str
    script: Path
    duration: int
    runs: list[Run] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)  # processes whose CPU use is measured

    def run(
        self, target: str, url: str, header: str, *, kind: str, threads: int, connections: int,
        seconds: int | None = None, record: bool = True,
    ) -> Run:  # fmt: skip
        """One wrk run sending ``header`` ("Name: value": the credential) with every request."""
        cmd = [
            self.binary, f"-t{threads}", f"-c{connections}", f"-d{seconds or self.duration}s",
            "--timeout", "5s", "--latency", "-s", str(self.script),
            "-H", header, url,
        ]  # fmt: skip
        cpu_before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        cpu_used = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in self.pids.items()}
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith(MARK)), None)
        if out.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr or out.stdout}")
        d = json.loads(line[len(MARK) :])
        errors = d["connect"] + d["read"] + d["write"] + d["timeout"]
        result = Run(
            target=target,
            kind=kind,
            connections=connections,
            rps=d["requests"] / (d["duration_us"] / 1e6),
            p50_ms=d["p50_us"] / 1000,
            p90_ms=d["p90_us"] / 1000,
            p99_ms=d["p99_us"] / 1000,
            p999_ms=d["p999_us"] / 1000,
            mean_ms=d["mean_us"] / 1000,
            max_ms=d["max_us"] / 1000,
            requests=d["requests"],
            non2xx=d["non2xx"],
            socket_errors=errors,
            cpu_ms_per_request={
                name: used * 1000 / max(d["requests"], 1) for name, used in cpu_used.items()
            },
        )
        if record:
            self.runs.append(result)
        return result


def median(runs: list[Run], target: str, kind: str, attr: str) -> float:
    return statistics.median(
        getattr(r, attr) for r in runs if r.target == target and r.kind == kind
    )


# --------------------------------------------------------------------------- main


def verify(targets: dict[str, tuple[str, str]]) -> int:
    """Every target answers 200 with the same items; returns the direct response's size in
    bytes. ``targets``: name -> (URL, credential header)."""
    answers = {}
    with httpx.Client(timeout=10) as client:
        for name, (url, header) in targets.items():
            resp = client.get(url, headers=header_dict(header))
            if resp.status_code != 200:
                raise RuntimeError(f"{name} answered {resp.status_code}: {resp.text[:300]}")
            answers[name] = resp
    items = {name: resp.json()["items"] for name, resp in answers.items()}
    if len(items["direct"]) != ROWS:
        raise RuntimeError(f"direct answered {len(items['direct'])} items, not {ROWS}")
    for name, got in items.items():
        if got != items["direct"]:
            raise RuntimeError(
                f"different answers: {len(items['direct'])} direct vs {len(got)} items ({name})"
            )
    return len(answers["direct"].content)


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(wrk: Wrk, args: argparse.Namespace, info: dict[str, Any]) -> dict[str, Any]:
    runs = wrk.runs
    targets = [t for t in TARGETS if any(r.target == t for r in runs)]
    percentiles = ("p50", "p90", "p99", "p999")
    lat = {(t, p): median(runs, t, "latency", f"{p}_ms") for t in targets for p in percentiles}
    rps = {t: median(runs, t, "throughput", "rps") for t in targets}
    tput_p50 = {t: median(runs, t, "throughput", "p50_ms") for t in targets}
    added = {t: {p: lat[(t, p)] - lat[("direct", p)] for p in percentiles} for t in targets}
    ratio = {t: rps[t] / rps["direct"] if rps["direct"] else 0.0 for t in targets}
    has_baseline = "baseline" in targets
    over_baseline = {
        t: lat[(t, "p50")] - lat[("baseline", "p50")] for t in CREDENTIALS if has_baseline
    }

    def per_round(target: str, reference: str) -> list[float]:
        """p50 of ``target`` minus ``reference``'s, round by round (the same round's machine)."""
        pairs = zip(
            (r for r in runs if (r.kind, r.target) == ("latency", target)),
            (r for r in runs if (r.kind, r.target) == ("latency", reference)),
            strict=True,
        )
        return [a.p50_ms - b.p50_ms for a, b in pairs]

    non2xx = {t: sum(r.non2xx for r in runs if r.target == t) for t in targets}
    sock = {t: sum(r.socket_errors for r in runs if r.target == t) for t in targets}
    met = {
        "added_p50_ms": all(added[t]["p50"] <= TARGET_ADDED_P50_MS for t in CREDENTIALS),
        "added_p99_ms": all(added[t]["p99"] <= TARGET_ADDED_P99_MS for t in CREDENTIALS),
        "rps_ratio": all(ratio[t] >= TARGET_RPS_RATIO for t in CREDENTIALS),
    }
    if has_baseline:
        met["over_baseline_p50_ms"] = all(
            d <= TARGET_OVER_BASELINE_P50_MS for d in over_baseline.values()
        )
    n = args.connections
    names = {"direct": "direct", "baseline": "baseline", "gateway": "API key",
             "session": "session", "jwt": "JWT"}  # fmt: skip

    print()
    print(f"Gateway proxy overhead: GET {PATH} ({ROWS} items, {info['body_bytes']} bytes)")
    print(
        f"machine: {info['machine']['cpus']} CPUs ({info['machine']['cpu_model']}),"
        f" {info['wrk']}, Python {info['machine']['python']}"
    )
    print(
        f"method: {args.duration} s per run, {args.rounds} rounds interleaved, medians;"
        f" {WARMUP_SECONDS} s warm-up each"
    )
    if has_baseline:
        print(f"baseline: the gateway of {info['baseline_revision'][:12]} with the API key")
    header = "".join(f"{names[t]:>10}" for t in targets)
    print()
    print(f"{'1 connection (-t1 -c1), ms':28}{header}")
    for p in ("p50", "p90", "p99"):
        print(f"  {p:26}" + "".join(f"{lat[(t, p)]:10.2f}" for t in targets))
    for p, target in (("p50", TARGET_ADDED_P50_MS), ("p99", TARGET_ADDED_P99_MS)):
        row = "".join(f"{added[t][p]:10.2f}" for t in targets)
        print(f"  {f'added over direct, {p}':26}{row}   target <= {target:g}"
              f" (API key, session, JWT)  {mark(met[f'added_{p}_ms'])}")  # fmt: skip
    if has_baseline:
        row = "".join(
            f"{over_baseline[t]:10.2f}" if t in over_baseline else f"{'':10}" for t in targets
        )
        print(f"  {'p50 over the baseline':26}{row}   target <= {TARGET_OVER_BASELINE_P50_MS:g}"
              f"  {mark(met['over_baseline_p50_ms'])}")  # fmt: skip
        for t in CREDENTIALS:
            print(f"    {names[t]} - baseline, per round: "
                  + " ".join(f"{d:.2f}" for d in per_round(t, "baseline")))  # fmt: skip
    print()
    print(f"{f'{n} connections (-t2 -c{n})':28}{header}")
    print(f"  {'requests/s':26}" + "".join(f"{rps[t]:10.0f}" for t in targets))
    print(f"  {'x direct':26}" + "".join(f"{ratio[t]:9.2f}x" for t in targets)
          + f"   target >= {TARGET_RPS_RATIO:g}x (API key, session, JWT)"
          f"  {mark(met['rps_ratio'])}")  # fmt: skip
    print(f"  {'p50 latency, ms':26}" + "".join(f"{tput_p50[t]:10.2f}" for t in targets))
    print()
    print(
        "non-2xx responses: "
        + ", ".join(f"{t} {non2xx[t]}" for t in targets)
        + "; socket errors: "
        + ", ".join(f"{t} {sock[t]}" for t in targets)
    )
    print("rounds:")
    for kind, attr, fmt in (("latency", "p50_ms", ".2f"), ("latency", "p99_ms", ".2f"),
                            ("throughput", "rps", ".0f")):  # fmt: skip
        cells = (
            f"{names[t]} " + " ".join(format(getattr(r, attr), fmt) for r in runs
                                      if (r.kind, r.target) == (kind, t))
            for t in targets
        )  # fmt: skip
        print(f"  {kind} {attr:7} " + " | ".join(cells))
    procs = sorted({proc for r in runs for proc in r.cpu_ms_per_request})
    cpu = {
        (t, proc): statistics.median(
            r.cpu_ms_per_request.get(proc, 0.0)
            for r in runs
            if (r.kind, r.target) == ("latency", t)
        )
        for t in targets
        for proc in procs
    }
    print("CPU per request at 1 connection, ms (median; what bounds the added latency):")
    for t in targets:
        print(f"  {names[t]:9}" + "".join(f"  {proc} {cpu[(t, proc)]:5.2f}" for proc in procs
                                          if cpu[(t, proc)] > 0))  # fmt: skip

    return {
        "date": info["date"],
        "command": info["command"],
        "request": f"GET {PATH}",
        "body_bytes": info["body_bytes"],
        "machine": info["machine"],
        "wrk": info["wrk"],
        "baseline_revision": info.get("baseline_revision"),
        "duration_s": args.duration,
        "rounds": args.rounds,
        "connections": n,
        "latency_ms": {t: {p: lat[(t, p)] for p in percentiles} for t in targets},
        "added_ms": added,
        "over_baseline_p50_ms": over_baseline,
        "over_baseline_p50_ms_per_round": {
            t: per_round(t, "baseline") for t in CREDENTIALS if has_baseline
        },
        "rps": rps,
        "rps_ratio": ratio,
        "non2xx": non2xx,
        "socket_errors": sock,
        "cpu_ms_per_request_at_1_connection": {
            t: {proc: cpu[(t, proc)] for proc in procs} for t in targets
        },
        "targets": {
            "added_p50_ms": {"target": TARGET_ADDED_P50_MS, "met": met["added_p50_ms"]},
            "added_p99_ms": {"target": TARGET_ADDED_P99_MS, "met": met["added_p99_ms"]},
            "rps_ratio": {"target": TARGET_RPS_RATIO, "met": met["rps_ratio"]},
            **(
                {
                    "over_baseline_p50_ms": {
                        "target": TARGET_OVER_BASELINE_P50_MS,
                        "met": met["over_baseline_p50_ms"],
                    }
                }
                if has_baseline
                else {}
            ),
        },
        "runs": [asdict(r) for r in runs],
    }


def profile_gateway(wrk: Wrk, gateway: str, header: str, pid: int, out: Path, n: int) -> None:
    """Sample the gateway with py-spy during one extra run with ``n`` clients."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("--profile: py-spy not found (.venv/bin/pip install py-spy)", file=sys.stderr)
        return
    seconds = wrk.duration
    cmd = [spy, "record", "-d", str(seconds), "-r", "250", "--pid", str(pid),
           "--format", "speedscope", "-o", str(out), "--nonblocking"]  # fmt: skip
    spy_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        r = wrk.run("gateway", gateway + PATH, header, kind="profile", threads=min(2, n),
                    connections=n, seconds=seconds, record=False)  # fmt: skip
        print(
            f"profiled gateway run ({n} connection(s), under py-spy): {r.requests} requests,"
            f" {r.rps:.0f} requests/s, p50 {r.p50_ms:.2f} ms"
        )
    finally:
        _, err = spy_proc.communicate(timeout=seconds + 30)
        if spy_proc.returncode != 0:
            print(f"py-spy failed: {err.decode(errors='replace')[-500:]}", file=sys.stderr)
        else:
            print(f"gateway profile written to {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=50, help="clients for throughput")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (>= 2)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--log-level",
        default="INFO",
        help="the services' SEEDOS_LOG_LEVEL (INFO, the default, logs one line per request)",
    )
    parser.add_argument("--profile", type=Path, help="py-spy speedscope profile of the gateway")
    parser.add_argument(
        "--profile-connections", type=int, default=1, help="clients during the profiled run"
    )
    parser.add_argument("--keep-logs", action="store_true", help="copy the services' log to /tmp")
    parser.add_argument(
        "--baseline-rev", default=BASELINE_REVISION,
        help="the revision whose gateway is the baseline (default: the last before issue 13)",
    )  # fmt: skip
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline target")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be at least 2")

    def interrupted(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # clean up on kill as on Ctrl-C
    wrk_bin = ensure_wrk()
    info: dict[str, Any] = {
        **run_info("gateway_proxy.py"),
        "wrk": wrk_version(wrk_bin),
    }
    tmp = Path(tempfile.mkdtemp(prefix="seedos-bench-"))
    server = issuer = None
    supervisor: Supervisor | None = None
    try:
        print(f"starting embedded PostgreSQL in {tmp} ...", file=sys.stderr)
        server = embedded.start(tmp, cleanup_mode="delete")
        dsn = embedded.dsn(server)
        prepared = asyncio.run(prepare_database(dsn))

        ports, urls = loopback_urls()
        keys = ServiceKeys.generate()
        issuer = SupabaseIssuer.start()
        env = service_env(
            dsn=dsn, urls=urls, data_dir=tmp / "data", log_level=args.log_level,
            keys=keys, SEEDOS_GATEWAY_JWT_ISSUERS=issuer.setting(),
            SEEDOS_PUBLIC_URL=urls["gateway"],  # rate limits at their defaults: checked, not hit
        )  # fmt: skip
        log_path = tmp / "services.log"
        supervisor = Supervisor(env, log_path=log_path)
        start_all(supervisor, ports, urls)
        baseline_urls: dict[str, str] = {}
        if not args.no_baseline:
            print(f"starting the gateway of {args.baseline_rev} ...", file=sys.stderr)
            info["baseline_revision"] = unpack_revision(args.baseline_rev, tmp / "baseline")
            baseline_urls = start_baseline(supervisor, tmp / "baseline", env,
                                           marketplace_url=urls["marketplace_service"])  # fmt: skip

        signer = keys.signer(ttl=600)
        principal = Principal(
            tenant_id=prepared.tenant_id,
            subject="apikey:bench",
            role=Role.admin.value,
            tenant_slug=prepared.slug,
        )
        direct_token = signer.mint(principal, audience="connector_service")
        direct, gateway = urls["connector_service"], urls["gateway"]
        jwt = issuer.token(tenant_id=prepared.tenant_id, role=Role.admin.value)
        targets = {
            "direct": (direct + PATH, bearer(direct_token)),
            **({"baseline": (baseline_urls["baseline_gateway"] + PATH, bearer(prepared.api_key))}
               if baseline_urls else {}),
            "gateway": (gateway + PATH, bearer(prepared.api_key)),
            "session": (gateway + PATH, session_cookie(prepared.session)),
            "jwt": (gateway + PATH, bearer(jwt)),
        }  # fmt: skip
        info["body_bytes"] = verify(targets)

        script = tmp / "done.lua"
        script.write_text(DONE_LUA)
        wrk = Wrk(wrk_bin, script, args.duration)
        measured = ("gateway", "connector_service", *baseline_urls)
        wrk.pids = {name: supervisor.procs[name].pid for name in measured}
        n = args.connections
        for name, (url, header) in targets.items():
            print(f"warming up {name} ...", file=sys.stderr)
            wrk.run(name, url, header, kind="warmup", threads=2, connections=n,
                    seconds=WARMUP_SECONDS, record=False)  # fmt: skip
            wrk.run(name, url, header, kind="warmup", threads=1, connections=1,
                    seconds=WARMUP_SECONDS, record=False)  # fmt: skip
        through = [t for t in targets if t != "direct"]
        for i in range(args.rounds):
            # the gateway targets rotate places every round, so none always runs first or last
            shift = i % len(through)
            order = ("direct", *through[shift:], *through[:shift])
            for kind, threads, conns in (("latency", 1, 1), ("throughput", 2, n)):
                for name in order:
                    url, header = targets[name]
                    r = wrk.run(name, url, header, kind=kind, threads=threads, connections=conns)
                    print(
                        f"round {i + 1}/{args.rounds} {kind:10} {name:9}: {r.rps:7.0f} req/s"
                        f"  p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms"
                        f"  non-2xx {r.non2xx}",
                        file=sys.stderr,
                    )
        if name := supervisor.first_exited():
            raise RuntimeError(f"{name} exited during the run; see {log_path}")
        result = report(wrk, args, info)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
            print(f"\nfigures written to {args.json}")
        if args.profile:
            profile_gateway(wrk, gateway, bearer(prepared.api_key),
                            supervisor.procs["gateway"].pid, args.profile,
                            args.profile_connections)  # fmt: skip
        if args.keep_logs:
            kept = Path(tempfile.gettempdir()) / f"seedos-bench-services-{os.getpid()}.log"
            shutil.copyfile(log_path, kept)
            print(f"services' log copied to {kept}")
        errors = sum(result["non2xx"].values()) + sum(result["socket_errors"].values())
        return 1 if errors else 0
    except KeyboardInterrupt:
        print("\ninterrupted; stopping ...", file=sys.stderr)
        return 130
    finally:
        if supervisor is not None:
            supervisor.stop()
        if issuer is not None:
            issuer.close()
        if server is not None:
            with contextlib.suppress(Exception):
                server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
