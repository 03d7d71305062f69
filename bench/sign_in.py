"""Sign-in callback: what turning a provider's code into a session costs the gateway.

Usage (no manual setup; needs node and sdk/tests/oidc's node_modules, ``npm ci`` there)::

    .venv/bin/python bench/sign_in.py [--n 50] [--me 5] [--json out.json]

A throwaway embedded PostgreSQL is created, migrated and seeded; the three services run as real
uvicorn processes (production mode) on free loopback ports, the gateway with one OpenID provider:
the npm oidc-provider test server (sdk/tests/oidc/server.mjs) with a web client for it and the
account alice, who is already an admin of a tenant (a returning member signs in).

Each sign-in is what a browser does, with httpx: ``GET /auth/login`` (303 to the provider, with
the ``__Host-seedos_login`` cookie), the provider's development login and consent pages (HTML
forms, in a fresh cookie jar each time), then ``GET /auth/callback`` with the code and the login
cookie, timed. The callback's ``Server-Timing: provider;dur=X, total;dur=Y`` (ms) gives the
server time excluding the provider, Y - X, compared with issue 12's target: <= 50 ms. As a
reference from the same run, ``GET /api/v1/me`` with the new session cookie, ``--me`` times per
sign-in. The first sign-in fetches the provider's discovery document and keys: it is reported
apart (warm-up) and left out of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import secrets
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from machine import cpu_seconds, run_info  # noqa: E402  (bench/machine.py)
from services import loopback_urls, service_env, start_all  # noqa: E402  (bench/services.py)

from common import db, embedded, migrate  # noqa: E402
from gateway.sessions import cookies  # noqa: E402
from gateway.tenants import service as tenants  # noqa: E402
from gateway.users import repository as users_repository  # noqa: E402
from gateway.users import service as users  # noqa: E402
from seedos_cli import demo  # noqa: E402
from seedos_cli.deployment_keys import ServiceKeys  # noqa: E402
from seedos_cli.supervisor import Supervisor  # noqa: E402

OIDC_DIR = ROOT / "sdk" / "tests" / "oidc"
PROVIDER = "bench"
CLIENT_ID, CLIENT_SECRET = "gw", "gw-secret"
LOGIN = "alice"
ACCOUNTS = {"alice": {"email": "alice@example.com", "email_verified": True, "name": "Alice"}}
TARGET_SERVER_MS = 50.0  # issue 12: the callback's server time, excluding the provider

_FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.IGNORECASE | re.DOTALL)
_ATTR = re.compile(r'([a-zA-Z_:-]+)\s*=\s*"([^"]*)"')
_INPUT = re.compile(r"<input\b([^>]*)>", re.IGNORECASE)
_TIMING = re.compile(r"([a-z]+);dur=([0-9.]+)")


# --------------------------------------------------------------------------- the provider


@dataclass
class OidcProvider:
    process: subprocess.Popen[bytes]
    endpoints: dict[str, str]

    @property
    def issuer(self) -> str:
        return self.endpoints["issuer"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_provider(gateway: str, log_path: Path) -> OidcProvider:
    """server.mjs on a free loopback port with the gateway's web client and alice; it prints
    one JSON line with its endpoints once listening."""
    client = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "redirect_uris": [gateway + "/auth/callback"],
        "post_logout_redirect_uris": [gateway + "/auth/signed-out"],
        "scope": "openid email profile",
    }
    env = {
        **os.environ,
        "OIDC_HOST": "127.0.0.1",
        "OIDC_CLIENTS": json.dumps([client]),
        "OIDC_ACCOUNTS": json.dumps(ACCOUNTS),
    }
    if not (OIDC_DIR / "node_modules").is_dir():
        sys.exit(f"{OIDC_DIR}/node_modules is missing: run `npm ci` there first")
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            ["node", "server.mjs"], cwd=OIDC_DIR, env=env, stdout=subprocess.PIPE, stderr=log
        )
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            return OidcProvider(process, json.loads(process.stdout.readline()))
    process.kill()
    raise RuntimeError(f"the OpenID provider did not start: {log_path.read_text()[-2000:]}")


# --------------------------------------------------------------------------- data


async def prepare_database(dsn: str, issuer: str) -> str:
    """Migrations, demo data, and alice as an admin of a tenant of her own (so each sign-in
    is a returning member's). Returns the tenant's slug."""
    conn = await db.connect(dsn)
    try:
        await migrate.apply(conn)
        await demo.seed(conn)
        slug = f"bench-{secrets.token_hex(4)}"
        async with conn.transaction():
            tenant = await tenants.create(
                conn, slug=slug, name="Bench Company", actor="system:bench"
            )
            claims = ACCOUNTS[LOGIN]
            user, _ = await users.sign_in(
                conn,
                users.Identity(
                    issuer=issuer, subject=LOGIN, provider=PROVIDER, email=claims["email"],
                    email_verified=claims["email_verified"], name=claims["name"],
                ),
            )  # fmt: skip
            await users_repository.add_membership(
                conn, tenant_id=tenant["id"], user_id=user["id"], role="admin", created_by="bench"
            )
    finally:
        await conn.close()
    return slug


# --------------------------------------------------------------------------- one sign-in


@dataclass
class SignIn:
    server_ms: float  # total - provider, from Server-Timing
    provider_ms: float
    total_ms: float
    callback_ms: float  # client side: request sent to answer read
    login_ms: float  # client side, GET /auth/login
    me_ms: list[float]  # GET /api/v1/me with the new session: the first, then the others
    # CPU time (/proc/<pid>/stat, 10 ms ticks: meaningful as a mean over many sign-ins)
    cpu_ms: dict[str, float]  # "gateway: login", "gateway: callback", "provider: callback"


def set_cookie(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        key, _, rest = header.partition("=")
        if key.strip() == name:
            return rest.split(";", 1)[0]
    raise RuntimeError(f"no {name} cookie in the answer ({response.status_code})")


def form(html: str, prompt: str) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of the page's form whose ``prompt`` field is ``prompt``."""
    for attrs, body in _FORM.findall(html):
        fields = {}
        for tag in _INPUT.findall(body):
            a = dict(_ATTR.findall(tag))
            if a.get("type") == "hidden" and "name" in a:
                fields[a["name"]] = unescape(a.get("value", ""))
        if fields.get("prompt") == prompt:
            return unescape(dict(_ATTR.findall(attrs))["action"]), fields
    raise RuntimeError(f"no {prompt} form on the provider's page: {html[:500]}")


def at_provider(start_url: str, callback_prefix: str) -> str:
    """Walk the provider's login and consent pages as a browser would (fresh cookie jar) and
    return the URL it sends the browser back to: the gateway's callback with the code."""
    with httpx.Client(timeout=30, follow_redirects=False) as browser:
        response = browser.get(start_url)
        for _step in range(20):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if location.startswith(callback_prefix):
                    return location
                response = browser.get(location)
                continue
            if response.status_code != 200:
                raise RuntimeError(f"the provider answered {response.status_code}: "
                                   f"{response.text[:500]}")  # fmt: skip
            page = response.text
            if 'name="prompt" value="login"' in page:
                action, fields = form(page, "login")
                fields.update(login=LOGIN, password="any")
            elif 'name="prompt" value="consent"' in page:
                action, fields = form(page, "consent")
            else:
                raise RuntimeError(f"an unexpected page at the provider: {page[:500]}")
            response = browser.post(urljoin(str(response.url), action), data=fields)
        raise RuntimeError("the provider kept asking")


def server_timing(response: httpx.Response) -> dict[str, float]:
    return {k: float(v) for k, v in _TIMING.findall(response.headers.get("server-timing", ""))}


def cpu_ms(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) * 1000 for name, pid in pids.items()}


def sign_in(
    gw: httpx.Client, gateway: str, slug: str, me_requests: int, pids: dict[str, int]
) -> SignIn:
    """One sign-in from /auth/login to the session; checks the session is alice's, as an
    admin of her tenant (``slug``). ``pids``: the gateway's and the provider's processes."""
    cpu0 = cpu_ms(pids)
    t0 = time.perf_counter()
    login = gw.get("/auth/login")
    login_ms = (time.perf_counter() - t0) * 1000
    cpu1 = cpu_ms(pids)
    if login.status_code != 303:
        raise RuntimeError(f"/auth/login answered {login.status_code}: {login.text[:300]}")
    login_cookie = set_cookie(login, cookies.LOGIN)
    back = at_provider(login.headers["location"], gateway + "/auth/callback?")
    # httpx keeps a Secure cookie off http://: the login cookie is sent by hand
    path = back[len(gateway) :]
    headers = {"cookie": f"{cookies.LOGIN}={login_cookie}"}
    cpu2 = cpu_ms(pids)
    t0 = time.perf_counter()
    callback = gw.get(path, headers=headers)
    callback_ms = (time.perf_counter() - t0) * 1000
    cpu3 = cpu_ms(pids)
    if callback.status_code != 303:
        raise RuntimeError(f"/auth/callback answered {callback.status_code}: {callback.text[:300]}")
    timing = server_timing(callback)
    if "provider" not in timing or "total" not in timing:
        raise RuntimeError(f"no Server-Timing in the callback's answer: {callback.headers}")
    session = set_cookie(callback, cookies.SESSION)
    me_ms = []
    for _ in range(me_requests):
        t0 = time.perf_counter()
        me = gw.get("/api/v1/me", headers={"cookie": f"{cookies.SESSION}={session}"})
        me_ms.append((time.perf_counter() - t0) * 1000)
        if me.status_code != 200:
            raise RuntimeError(f"/api/v1/me answered {me.status_code}: {me.text[:300]}")
        if len(me_ms) == 1:
            who = me.json()
            seen = (who["auth_method"], (who["tenant"] or {}).get("slug"), who["role"])
            if seen != ("session", slug, "admin") or who["user"]["email"] != "alice@example.com":
                raise RuntimeError(f"the session is not alice's as an admin of {slug}: {who}")
    return SignIn(
        server_ms=timing["total"] - timing["provider"],
        provider_ms=timing["provider"],
        total_ms=timing["total"],
        callback_ms=callback_ms,
        login_ms=login_ms,
        me_ms=me_ms,
        cpu_ms={
            "gateway: login": cpu1["gateway"] - cpu0["gateway"],
            "gateway: callback": cpu3["gateway"] - cpu2["gateway"],
            "provider: callback": cpu3["provider"] - cpu2["provider"],
        },
    )


# --------------------------------------------------------------------------- report


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "p90": nearest_rank(values, 90),
        "max": max(values),
    }


def report(runs: list[SignIn], info: dict[str, Any], cpu: dict[str, float]) -> dict[str, Any]:
    warm, timed = runs[0], runs[1:]
    rows = {
        "server (total - provider)": summary([r.server_ms for r in timed]),
        "at the provider": summary([r.provider_ms for r in timed]),
        "total (Server-Timing)": summary([r.total_ms for r in timed]),
        "callback, client side": summary([r.callback_ms for r in timed]),
        "GET /auth/login, client side": summary([r.login_ms for r in timed]),
    }
    me_first = [r.me_ms[0] for r in timed if r.me_ms]
    me_rest = [ms for r in timed for ms in r.me_ms[1:]]
    me_all = [ms for r in timed for ms in r.me_ms]
    if me_first:
        rows["GET /api/v1/me, first with the session"] = summary(me_first)
    if me_rest:
        rows["GET /api/v1/me, the following"] = summary(me_rest)
    server = rows["server (total - provider)"]
    met = server["median"] <= TARGET_SERVER_MS
    m = info["machine"]

    print()
    print(f"Sign-in callback (GET /auth/callback): {len(timed)} sign-ins timed after 1 warm-up")
    print(
        f"machine: {m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']},"
        f" kernel {m['kernel']}; provider: oidc-provider {info['oidc_provider']} on node"
        f" {info['node']}"
    )
    print()
    print(f"{'ms':42}{'median':>9}{'p90':>9}{'max':>9}{'warm-up':>9}")
    warm_values = {
        "server (total - provider)": warm.server_ms,
        "at the provider": warm.provider_ms,
        "total (Server-Timing)": warm.total_ms,
        "callback, client side": warm.callback_ms,
        "GET /auth/login, client side": warm.login_ms,
        "GET /api/v1/me, first with the session": warm.me_ms[0] if warm.me_ms else math.nan,
        "GET /api/v1/me, the following": (
            statistics.median(warm.me_ms[1:]) if warm.me_ms[1:] else math.nan
        ),
    }
    for name, s in rows.items():
        print(
            f"  {name:40}{s['median']:9.2f}{s['p90']:9.2f}{s['max']:9.2f}{warm_values[name]:9.2f}"
        )
    print()
    print(
        f"server time excluding the provider, median {server['median']:.2f} ms"
        f" (target <= {TARGET_SERVER_MS:g} ms): {'PASS' if met else 'MISS'}"
    )
    if me_all:
        me_median = statistics.median(me_all)
        print(
            f"reference: GET /api/v1/me with the new session, median {me_median:.2f} ms over"
            f" {len(me_all)} requests; the callback (client side) is"
            f" {rows['callback, client side']['median'] / me_median:.1f}x that"
        )
    print(
        f"CPU per timed sign-in (/auth/login, the provider's pages, the callback and"
        f" {len(warm.me_ms)} /api/v1/me), ms: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
    )
    phases = {k: statistics.mean(r.cpu_ms[k] for r in timed) for k in timed[0].cpu_ms}
    print(
        'CPU per request, ms (mean over the timed sign-ins; the gateway\'s "provider" time'
        " includes its own work for the exchange: HTTP client, ID token check): "
        + ", ".join(f"{k} {v:.1f}" for k, v in phases.items())
    )
    return {
        "date": info["date"],
        "command": info["command"],
        "machine": info["machine"],
        "node": info["node"],
        "oidc_provider": info["oidc_provider"],
        "sign_ins_timed": len(timed),
        "me_requests_per_sign_in": len(warm.me_ms),
        "ms": rows,
        "warm_up_ms": warm_values,
        "me_median_ms": statistics.median(me_all) if me_all else None,
        "cpu_ms_per_sign_in": cpu,
        "cpu_ms_per_request_mean": phases,
        "targets": {"server_ms_median": {"target": TARGET_SERVER_MS, "met": met}},
        "sign_ins": [asdict(r) for r in runs],
    }


def tool_versions() -> tuple[str, str]:
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    package = OIDC_DIR / "node_modules" / "oidc-provider" / "package.json"
    version = "unknown"
    with contextlib.suppress(OSError, ValueError, KeyError):
        version = json.loads(package.read_text())["version"]
    return node.stdout.strip() or "unknown", version


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50, help="sign-ins (the first is a warm-up)")
    parser.add_argument("--me", type=int, default=5, help="GET /api/v1/me per sign-in")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--log-level", default="INFO", help="the services' SEEDOS_LOG_LEVEL (default INFO)"
    )
    parser.add_argument("--keep-logs", action="store_true", help="copy the logs to /tmp")
    args = parser.parse_args()
    if args.n < 2:
        parser.error("--n must be at least 2 (the first is a warm-up)")
    if shutil.which("node") is None:
        sys.exit("node is not installed")

    def interrupted(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # clean up on kill as on Ctrl-C
    node, oidc_version = tool_versions()
    info: dict[str, Any] = {
        **run_info("sign_in.py"),
        "node": node,
        "oidc_provider": oidc_version,
    }
    tmp = Path(tempfile.mkdtemp(prefix="seedos-bench-"))
    server = None
    provider: OidcProvider | None = None
    supervisor: Supervisor | None = None
    try:
        ports, urls = loopback_urls()
        gateway = urls["gateway"]
        print("starting the OpenID provider ...", file=sys.stderr)
        provider = start_provider(gateway, tmp / "oidc.log")

        print(f"starting embedded PostgreSQL in {tmp} ...", file=sys.stderr)
        server = embedded.start(tmp, cleanup_mode="delete")
        dsn = embedded.dsn(server)
        slug = asyncio.run(prepare_database(dsn, provider.issuer))

        env = service_env(
            dsn=dsn, urls=urls, data_dir=tmp / "data", log_level=args.log_level,
            keys=ServiceKeys.generate(),
            SEEDOS_PUBLIC_URL=gateway,
            SEEDOS_GATEWAY_OIDC_PROVIDERS=json.dumps({PROVIDER: {
                "issuer": provider.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            }}),
            # every sign-in comes from 127.0.0.1: the per-address limit would stop the run
            SEEDOS_GATEWAY_AUTH_RATE_PER_MINUTE="10000",
        )  # fmt: skip
        log_path = tmp / "services.log"
        supervisor = Supervisor(env, log_path=log_path)
        start_all(supervisor, ports, urls)

        pids = {"gateway": supervisor.procs["gateway"].pid, "provider": provider.process.pid}
        runs: list[SignIn] = []
        cpu_before: dict[str, float] = {}
        with httpx.Client(base_url=gateway, timeout=30, follow_redirects=False) as gw:
            for i in range(args.n):
                if i == 1:  # CPU from the first timed sign-in on
                    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                r = sign_in(gw, gateway, slug, args.me, pids)
                runs.append(r)
                print(
                    f"sign-in {i + 1}/{args.n}{' (warm-up)' if i == 0 else ''}:"
                    f" server {r.server_ms:6.1f} ms  provider {r.provider_ms:6.1f} ms"
                    f"  callback {r.callback_ms:6.1f} ms",
                    file=sys.stderr,
                )
        cpu = {
            name: (cpu_seconds(pid) - cpu_before[name]) * 1000 / (args.n - 1)
            for name, pid in pids.items()
        }
        if name := supervisor.first_exited():
            raise RuntimeError(f"{name} exited during the run; see {log_path}")
        result = report(runs, info, cpu)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
            print(f"\nfigures written to {args.json}")
        if args.keep_logs:
            for name in ("services.log", "oidc.log"):
                kept = Path(tempfile.gettempdir()) / f"seedos-bench-sign-in-{os.getpid()}-{name}"
                shutil.copyfile(tmp / name, kept)
                print(f"{name} copied to {kept}")
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; stopping ...", file=sys.stderr)
        return 130
    finally:
        if supervisor is not None:
            supervisor.stop()
        if provider is not None:
            provider.stop()
        if server is not None:
            with contextlib.suppress(Exception):
                server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
