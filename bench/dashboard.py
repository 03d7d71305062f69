"""The dashboard's first load and Lighthouse scores, in Debian's Chromium.

Usage (no manual setup; installs bench/lighthouse's npm packages on first use)::

    .venv/bin/python bench/dashboard.py [--loads 15] [--contacts 500] [--no-lighthouse]
                                        [--json out.json]

The sync stack of bench/stack.py starts (the demo CRM with ``--contacts`` contacts, one
install, synced once); a person, the tenant's admin, gets a session as a sign-in would.

* **First load of the overview** (target: <= 100 KB transferred, compressed, and interactive
  <= 1 s on loopback): ``--loads`` times, a fresh browser profile (cold cache) opens ``/`` and
  waits until the installs are listed with their latency sparklines (the overview's last
  request answered and drawn). *Transferred* is the sum of every response's encoded bytes
  (headers and compressed bodies, Chromium's ``encodedDataLength``); *interactive* is
  ``performance.now()`` then (from the navigation's start). Reference, same run and browser:
  the sign-in page (one small template and the stylesheet, no data) loaded the same way,
  which is the floor any page of the gateway's has here.
* **Lighthouse 12.2.3** (npm; 13 needs Node 22) on every page, with the session's cookie:
  accessibility and performance scores (targets: 100 and >= 95), mobile form factor with its
  default simulated throttling (a slow 4G network and a 4x slower CPU), with FCP, LCP, TBT and
  the bytes it saw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
from playwright.async_api import async_playwright  # noqa: E402

from common import db  # noqa: E402
from gateway.sessions import cookies  # noqa: E402
from gateway.sessions import service as sessions  # noqa: E402
from gateway.users import repository as users  # noqa: E402
from gateway.users import service as user_service  # noqa: E402

LIGHTHOUSE = ROOT / "bench" / "lighthouse"
CHROMIUM = os.environ.get("SEEDOS_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
TARGET_KB, TARGET_INTERACTIVE_S = 100, 1.0
TARGET_A11Y, TARGET_PERF = 100, 95


async def session_for(dsn: str, tenant_id: str) -> str:
    """A session of the tenant's admin, made as a sign-in makes one; its cookie value."""
    conn = await db.connect(dsn)
    try:
        async with conn.transaction():
            user, _ = await user_service.sign_in(conn, user_service.Identity(
                issuer="https://idp.bench.invalid", subject="bench-admin", provider="bench",
                email="admin@bench.invalid", email_verified=True, name="Bench Admin"))  # fmt: skip
            await users.add_membership(conn, tenant_id=tenant_id, user_id=user["id"],
                                       role="admin", created_by="bench")  # fmt: skip
            issued = await sessions.start(
                conn, user_id=user["id"], tenant_id=tenant_id, role="admin", provider="bench",
                issuer="https://idp.bench.invalid",
                timeouts=sessions.Timeouts(idle_seconds=3600, absolute_seconds=43200),
            )  # fmt: skip
        return issued.secret
    finally:
        await conn.close()


async def cold_loads(gateway: str, secret: str, loads: int) -> dict[str, Any]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            runs: dict[str, list[dict[str, float]]] = {"overview": [], "sign_in": []}
            for _ in range(loads):
                for name in runs:
                    runs[name].append(await one_load(browser, gateway, secret, name))
        finally:
            await browser.close()
    return {name: summary(found) for name, found in runs.items()}


async def one_load(browser: Any, gateway: str, secret: str, name: str) -> dict[str, float]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        if name == "overview":
            await context.add_cookies([{
                "name": cookies.SESSION, "value": secret, "domain": "127.0.0.1", "path": "/",
                "secure": True, "httpOnly": True, "sameSite": "Lax"}])  # fmt: skip
        page = await context.new_page()
        cdp = await context.new_cdp_session(page)
        await cdp.send("Network.enable")
        received: list[int] = []
        cdp.on("Network.loadingFinished", lambda e: received.append(e["encodedDataLength"]))
        if name == "overview":
            await page.goto(gateway + "/")
            await page.locator("tr[data-id] .latency svg").first.wait_for()
        else:
            await page.goto(gateway + "/auth/sign-in")
            await page.locator("h1").wait_for()
        at = await page.evaluate("performance.now()")
        await page.wait_for_load_state("networkidle")
        return {"kb": sum(received) / 1024, "interactive_s": at / 1000, "requests": len(received)}
    finally:
        await context.close()


def summary(runs: list[dict[str, float]]) -> dict[str, float]:
    times = sorted(r["interactive_s"] for r in runs)
    return {
        "kb_median": statistics.median(r["kb"] for r in runs),
        "kb_max": max(r["kb"] for r in runs),
        "requests": statistics.median(r["requests"] for r in runs),
        "interactive_median_s": statistics.median(times),
        "interactive_p90_s": times[min(len(times) - 1, int(len(times) * 0.9))],
    }


def ensure_lighthouse() -> Path:
    binary = LIGHTHOUSE / "node_modules" / ".bin" / "lighthouse"
    if not binary.exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=LIGHTHOUSE, check=True)  # fmt: skip
    return binary


def lighthouse(
    binary: Path, url: str, secret: str | None, *, keep: Path | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        out = (keep or Path(folder)) / "report.json"
        command = [
            str(binary),
            url,
            "--quiet",
            "--output=json",
            f"--output-path={out}",
            "--only-categories=performance,accessibility",
            "--chrome-flags=" + " ".join(["--headless=new", *FLAGS]),
        ]
        if secret is not None:
            command.append("--extra-headers=" + json.dumps(
                {"Cookie": f"{cookies.SESSION}={secret}"}))  # fmt: skip
        env = {**os.environ, "CHROME_PATH": CHROMIUM}
        subprocess.run(command, check=True, env=env, timeout=300, capture_output=True)
        report = json.loads(out.read_text())
    audits = report["audits"]

    def value(name: str) -> float | None:
        return audits.get(name, {}).get("numericValue")

    failing = [a["id"] for a in report["categories"]["accessibility"]["auditRefs"]
               if audits[a["id"]].get("score") not in (None, 1) and a["weight"] > 0]  # fmt: skip
    return {
        "accessibility": round(report["categories"]["accessibility"]["score"] * 100),
        "performance": round(report["categories"]["performance"]["score"] * 100),
        "fcp_ms": value("first-contentful-paint"),
        "lcp_ms": value("largest-contentful-paint"),
        "tbt_ms": value("total-blocking-time"),
        "cls": value("cumulative-layout-shift"),
        "bytes": value("total-byte-weight"),
        "accessibility_failing": failing,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, default=15)
    parser.add_argument("--contacts", type=int, default=500)
    parser.add_argument("--no-lighthouse", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--reports", type=Path, help="keep Lighthouse's reports in this folder")
    parser.add_argument("--pages", help="only these pages, comma-separated (e.g. integration)")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    binary = None if args.no_lighthouse else ensure_lighthouse()
    info: dict[str, Any] = {
        **run_info("dashboard.py"),
    }
    with stack_.running(args.contacts, companies=10) as stack:
        stack_.first_sync(stack)
        stack.api.post(stack.base + "/check").raise_for_status()  # a call in the last 24 h
        tenant_id = stack.api.get("/api/v1/me").json()["tenant"]["id"]
        secret = asyncio.run(session_for(stack.dsn, tenant_id))
        gateway = stack.urls["gateway"]
        print(f"{args.loads} cold loads of / and of the sign-in page ...", file=sys.stderr)
        info["first_load"] = asyncio.run(cold_loads(gateway, secret, args.loads))
        if binary is not None:
            iid = stack.integration_id
            pages = {
                "sign-in": ("/auth/sign-in", False), "overview": ("/", True),
                "integration": (f"/integrations/{iid}", True),
                "records": (f"/integrations/{iid}/records?stream=contacts", True),
                "marketplace": ("/marketplace", True),
                "connector": ("/marketplace/bench-crm", True),
                "audit": ("/audit", True), "settings": ("/settings", True),
            }  # fmt: skip
            info["lighthouse"] = {}
            chosen = set(args.pages.split(",")) if args.pages else set(pages)
            for name, (path, signed_in) in pages.items():
                if name not in chosen:
                    continue
                print(f"lighthouse {name} ...", file=sys.stderr)
                keep = None
                if args.reports:
                    keep = args.reports / name
                    keep.mkdir(parents=True, exist_ok=True)
                info["lighthouse"][name] = lighthouse(
                    binary, gateway + path, secret if signed_in else None, keep=keep
                )
    report(info)
    if args.json:
        args.json.write_text(json.dumps(info, indent=2, default=str))
    return 0


def report(info: dict[str, Any]) -> None:
    first = info["first_load"]
    o, s = first["overview"], first["sign_in"]
    print(f"\n{info['date']} on {info['machine']['cpus']} CPUs ({info['machine']['cpu_model']})")
    print(
        f"first load of / (cold cache, median of loads): {o['kb_median']:.1f} KB transferred"
        f" (max {o['kb_max']:.1f}; target <= {TARGET_KB}) in {o['requests']:.0f} requests;"
        f" interactive {o['interactive_median_s'] * 1000:.0f} ms median,"
        f" {o['interactive_p90_s'] * 1000:.0f} ms p90"
        f" (target <= {TARGET_INTERACTIVE_S * 1000:.0f})"
    )
    print(
        f"  reference, the sign-in page: {s['kb_median']:.1f} KB,"
        f" {s['interactive_median_s'] * 1000:.0f} ms median;"
        f" the overview is {o['interactive_median_s'] / s['interactive_median_s']:.2f}x its time"
    )
    for name, found in info.get("lighthouse", {}).items():
        failing = ", ".join(found["accessibility_failing"]) or "none failing"
        print(
            f"lighthouse {name:12s} accessibility {found['accessibility']:3d}"
            f" performance {found['performance']:3d}  FCP {found['fcp_ms']:.0f} ms"
            f"  LCP {found['lcp_ms']:.0f} ms  TBT {found['tbt_ms']:.0f} ms"
            f"  {found['bytes'] / 1024:.0f} KB  ({failing})"
        )
    print(f"targets: accessibility {TARGET_A11Y}, performance >= {TARGET_PERF} on every page")


if __name__ == "__main__":
    sys.exit(main())
