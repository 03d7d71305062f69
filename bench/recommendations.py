"""Recommendation quality (precision@5, recall@10 against two baselines) and latency at 10k x 10k.

Usage (no manual setup)::

    .venv/bin/python bench/recommendations.py [--tenants 6000] [--requests 2000] [--seed 7]
                                              [--json out.json]

Everything runs against a throwaway embedded PostgreSQL (migrated like production), deleted at
the end.

Quality. A synthetic population is generated (below), written to the database, and one installed
connector per tenant is hidden (not written). The engine's statistics are then built by the
service's own code from the database (``RecommendationEngine.refresh``: catalog, tenants,
installs, metrics), and for every tenant the engine, a most-popular baseline (install counts
over all tenants) and a popular-in-industry baseline (counts among the tenant's industry) each
rank the connectors the tenant has not installed. A hit is the hidden connector in the top 5
(precision@5 = hits / 5, averaged) or top 10 (recall@10, one hidden item per tenant). The
engine is called in-process (``engine.recommend``, the function the route uses) so that 6,000
tenants take seconds; the same function is what the latency part measures through the service.

The synthetic population (``generate``), documented because the figures mean nothing without it:

- Catalog: the 44 real connectors of the demo catalog plus 12 niche connectors per industry
  (96), so 140 entries; the latency part adds generated long-tail entries up to 10,000.
- Tenants: 8 industries (software 20%, fintech 15%, ecommerce 15%, healthcare 12%,
  manufacturing 10%, media 10%, nonprofit 10%, education 8%); sizes in six employee bands
  (1-10 30%, 11-50 30%, 51-200 20%, 201-1,000 12%, 1,001-5,000 5%, 5,001+ 3%).
- Planted co-usage: 20 "stacks" over the real connectors (the Google suite, Microsoft, an
  engineering stack, HubSpot-led growth, Salesforce-led enterprise, Shopify commerce, ...), each
  with a weight per industry and a lean toward small or large companies, plus 3 niche stacks of
  4 per industry that only that industry uses. A tenant adopts 1 + Poisson(0.6 + 0.25 x band)
  stacks, drawn by weight without replacement, and installs each member with probability 0.7.
- Noise: Poisson(1.0) further connectors per tenant drawn from a Zipf(1.0) popularity over the
  whole catalog (ignoring stacks and industry); CRMs are mostly exclusive (a tenant with two
  keeps one with probability 0.85); a tenant with nothing gets one popular connector.
- No descriptions and no connector_metrics rows: description matching and health demotion do
  not enter the quality figures (the root tests cover their behaviour).

Latency. A second database gets 10,000 catalog entries (the 140 plus generated long-tail entries
with descriptions, grouped into small stacks of their own) and 10,000 tenants from the same
generator (30% with a description), marketplace_service runs as a real uvicorn process
(production mode), and ``GET /api/v1/marketplace/recommendations?k=10`` for 500 different
tenants is timed one request at a time with a pre-minted internal token, interleaved with the
reference, ``GET /api/v1/marketplace/connectors/{slug}`` (one catalog row by its unique key)
through the same process and client. The service rebuilds its shared statistics every 10 s
(``--refresh-seconds``; 60 s by default in production) so that rebuilds happen during the
measurement. Target: recommendations p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from machine import machine  # noqa: E402  (bench/machine.py)

from common import db, embedded, migrate  # noqa: E402
from common.internal_auth import Principal  # noqa: E402
from marketplace_service.catalog.service import DEMO_CATALOG, demo_entry  # noqa: E402
from marketplace_service.recommendations.engine import (  # noqa: E402
    Profile,
    RecommendationEngine,
    recommend,
)
from seedos_cli.deployment_keys import ServiceKeys  # noqa: E402
from seedos_cli.supervisor import ServiceSpec, Supervisor  # noqa: E402
from seedos_sdk.testing import free_port  # noqa: E402

INDUSTRIES = {
    "software": 0.20, "fintech": 0.15, "ecommerce": 0.15, "healthcare": 0.12,
    "manufacturing": 0.10, "media": 0.10, "nonprofit": 0.10, "education": 0.08,
}  # fmt: skip
BANDS = ((1, 10, 0.30), (11, 50, 0.30), (51, 200, 0.20), (201, 1000, 0.12),
         (1001, 5000, 0.05), (5001, 20000, 0.03))  # fmt: skip
CRMS = {"salesforce", "hubspot", "pipedrive", "zoho-crm"}
# name: (members, {industry: weight} (others 1.0), size lean: +1 large, -1 small, 0 none)
STACKS: dict[str, tuple[list[str], dict[str, float], int]] = {
    "google": (["gmail", "google-drive", "google-calendar", "google-sheets"],
               {"education": 2, "nonprofit": 2}, -1),
    "microsoft": (["microsoft-teams", "onedrive"], {"manufacturing": 2, "healthcare": 1.5}, 1),
    "atlassian": (["jira", "trello"], {"software": 2}, 0),
    "engineering": (["github", "linear", "pagerduty", "slack"], {"software": 4, "media": 1.5}, 0),
    "gitlab": (["gitlab", "jira", "slack"], {"software": 2, "manufacturing": 1.5}, 1),
    "growth": (["hubspot", "mailchimp", "intercom", "zoom"], {"ecommerce": 1.5, "media": 2}, -1),
    "enterprise-sales": (["salesforce", "slack", "zendesk", "snowflake"],
                         {"fintech": 2, "manufacturing": 1.5}, 1),
    "smb-sales": (["pipedrive", "xero", "google-sheets"], {"nonprofit": 0.5}, -1),
    "shopify": (["shopify", "stripe", "mailchimp", "quickbooks-online"], {"ecommerce": 6}, 0),
    "woo": (["woocommerce", "paypal", "sendgrid"], {"ecommerce": 4, "nonprofit": 1.5}, -1),
    "payments": (["stripe", "quickbooks-online", "twilio"], {"fintech": 4}, 0),
    "finance-ops": (["xero", "stripe", "airtable"], {"fintech": 2, "nonprofit": 1.5}, -1),
    "analytics": (["segment", "mixpanel", "snowflake", "google-analytics-4"],
                  {"software": 2, "media": 2, "ecommerce": 1.5}, 1),
    "warehouse": (["postgresql", "airtable", "notion"], {"software": 1.5}, 0),
    "support-fresh": (["freshdesk", "zoho-crm", "twilio"], {"healthcare": 1.5}, 0),
    "hr-small": (["bamboohr", "google-calendar"], {}, -1),
    "hr-large": (["workday", "microsoft-teams"], {"manufacturing": 1.5}, 1),
    "community": (["notion", "linear", "discord"], {"software": 1.5, "media": 1.5}, -1),
    "content": (["box", "asana", "zoom"], {"healthcare": 3, "education": 2}, 0),
    "studio": (["dropbox", "monday", "zoom"], {"media": 3}, 0),
}  # fmt: skip
NICHE_PER_INDUSTRY, NICHE_STACK = 12, 4


@dataclass
class Tenant:
    id: uuid.UUID
    industry: str
    size: int
    installed: set[str]
    description: str | None = None


def catalog(n_items: int, rng: np.random.Generator) -> tuple[list[dict], list[tuple]]:
    """Catalog rows (demo + niche + long tail up to ``n_items``) and every stack."""
    rows = [demo_entry(raw) for raw in json.loads(DEMO_CATALOG.read_text())]
    stacks = [(m, w, lean) for m, w, lean in STACKS.values()]
    for industry in INDUSTRIES:
        slugs = [f"{industry}-suite-{n}" for n in range(NICHE_PER_INDUSTRY)]
        for n, slug in enumerate(slugs):
            rows.append(
                _entry(
                    slug,
                    f"{industry.title()} Suite {n}",
                    industry,
                    f"A {industry} workflow tool: records, reports and filings.",
                )
            )
        for s in range(0, NICHE_PER_INDUSTRY, NICHE_STACK):
            weights = {i: (8.0 if i == industry else 0.0) for i in INDUSTRIES}
            stacks.append((slugs[s : s + NICHE_STACK], weights, 0))
    words = [
        "invoice",
        "ledger",
        "payroll",
        "shipping",
        "inventory",
        "ticket",
        "chat",
        "survey",
        "booking",
        "fleet",
        "learning",
        "donor",
        "grant",
        "claims",
        "patient",
        "video",
        "podcast",
        "ads",
        "warehouse",
        "sensor",
    ]
    tail = [f"tail-{n:05d}" for n in range(max(n_items - len(rows), 0))]
    for n, slug in enumerate(tail):
        picked = rng.choice(words, size=3, replace=False)
        rows.append(
            _entry(
                slug,
                f"Tail Connector {n:05d}",
                "other",
                f"Syncs {picked[0]}, {picked[1]} and {picked[2]} records.",
            )
        )
    for s in range(0, len(tail), 5):  # long-tail stacks, each liked by one random industry
        liked = rng.choice(list(INDUSTRIES))
        stacks.append((tail[s : s + 5], {i: (0.3 if i == liked else 0.02) for i in INDUSTRIES}, 0))
    return rows, stacks


def _entry(slug: str, name: str, category: str, description: str) -> dict[str, Any]:
    return {"slug": slug, "name": name, "service_identifier": slug, "category": category,
            "vendor": "bench", "description": description, "is_featured": False}  # fmt: skip


def generate(n_tenants: int, rows: list[dict], stacks: list[tuple], rng: np.random.Generator,
             *, describe: float = 0.0) -> list[Tenant]:  # fmt: skip
    slugs = [r["slug"] for r in rows]
    zipf = 1.0 / np.arange(1, len(slugs) + 1)
    popularity_order = rng.permutation(len(slugs))
    pop = np.empty(len(slugs))
    pop[popularity_order] = zipf / zipf.sum()
    industries, shares = list(INDUSTRIES), np.array(list(INDUSTRIES.values()))
    band_p = np.array([b[2] for b in BANDS])
    out = []
    for _ in range(n_tenants):
        industry = industries[rng.choice(len(industries), p=shares / shares.sum())]
        band = int(rng.choice(len(BANDS), p=band_p))
        size = int(rng.integers(BANDS[band][0], BANDS[band][1] + 1))
        weights = np.array([w.get(industry, 1.0) * (1.6 ** (lean * (band - 2)))
                            for _, w, lean in stacks])  # fmt: skip
        n_stacks = min(1 + rng.poisson(0.6 + 0.25 * band), int((weights > 0).sum()))
        chosen = rng.choice(len(stacks), size=n_stacks, replace=False, p=weights / weights.sum())
        installed = {m for s in chosen for m in stacks[s][0] if rng.random() < 0.7}
        installed |= {slugs[i] for i in rng.choice(len(slugs), size=rng.poisson(1.0), p=pop)}
        crms = sorted(installed & CRMS)
        if len(crms) > 1 and rng.random() < 0.85:
            keep = crms[rng.integers(len(crms))]
            installed -= set(crms) - {keep}
        if not installed:
            installed = {slugs[int(rng.choice(len(slugs), p=pop))]}
        description = None
        if rng.random() < describe:
            description = " ".join(rows[rng.integers(len(rows))]["description"].split()[:12])
        out.append(Tenant(uuid.uuid4(), industry, size, installed, description))
    return out


async def load(dsn: str, rows: list[dict], tenants: list[Tenant]) -> None:
    conn = await db.connect(dsn)
    try:
        await migrate.apply(conn)
        await conn.copy_records_to_table(
            "marketplace_connectors",
            columns=["slug", "name", "service_identifier", "category", "vendor", "description",
                     "is_featured", "auth_scheme"],
            records=[(r["slug"], r["name"], r["service_identifier"], r["category"], r["vendor"],
                      r["description"], r["is_featured"], "none") for r in rows],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "tenants", columns=["id", "slug", "name", "industry", "size", "description"],
            records=[(t.id, f"b-{t.id.hex[:20]}", f"Bench {t.id.hex[:8]}", t.industry, t.size,
                      t.description) for t in tenants],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "integration_connectors", columns=["tenant_id", "connector_name", "service_name"],
            records=[(t.id, s, s) for t in tenants for s in sorted(t.installed)],
        )  # fmt: skip
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def snapshot_of(dsn: str) -> tuple[Any, float]:
    """The statistics as the service builds them (reads and build in a worker process)."""
    engine = RecommendationEngine(dsn, refresh_seconds=60, health_window_seconds=7 * 86400)
    started = time.perf_counter()
    try:
        snap = await engine.refresh()
    finally:
        await engine.aclose()
    return snap, time.perf_counter() - started


def quality(args: argparse.Namespace, admin_dsn: str, rng: np.random.Generator) -> dict[str, Any]:
    rows, stacks = catalog(0, rng)
    population = generate(args.tenants, rows, stacks, rng)
    hidden: dict[uuid.UUID, str] = {}
    for t in population:
        item = sorted(t.installed)[rng.integers(len(t.installed))]
        hidden[t.id] = item
        t.installed = t.installed - {item}
    dsn = asyncio.run(_new_database(admin_dsn, "quality"))
    asyncio.run(load(dsn, rows, population))
    snap, built = asyncio.run(snapshot_of(dsn))
    slugs = [r["slug"] for r in rows]
    overall = _counts(population, None)
    by_industry = {i: _counts(population, i) for i in INDUSTRIES}
    score = {"engine": [0, 0], "most popular": [0, 0], "popular in industry": [0, 0]}
    for t in population:
        ranked = {
            "engine": [r["slug"] for r in recommend(
                snap, Profile(t.industry, t.size), t.installed, k=10)],
            "most popular": _top(overall, slugs, t.installed),
            "popular in industry": _top(by_industry[t.industry], slugs, t.installed),
        }  # fmt: skip
        for name, top in ranked.items():
            score[name][0] += hidden[t.id] in top[:5]
            score[name][1] += hidden[t.id] in top[:10]
    n = len(population)
    figures = {name: {"precision@5": h5 / (5 * n), "recall@10": h10 / n}
               for name, (h5, h10) in score.items()}  # fmt: skip
    best = max(figures["most popular"]["precision@5"],
               figures["popular in industry"]["precision@5"])  # fmt: skip
    return {
        "tenants": n, "catalog": len(rows),
        "installs_kept": sum(len(t.installed) for t in population),
        "mean_installs_before_hiding": 1 + sum(len(t.installed) for t in population) / n,
        "snapshot_build_seconds": built, "figures": figures,
        "ratio_to_better_baseline": figures["engine"]["precision@5"] / best,
    }  # fmt: skip


def _counts(population: list[Tenant], industry: str | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in population:
        if industry is None or t.industry == industry:
            for s in t.installed:
                counts[s] = counts.get(s, 0) + 1
    return counts


def _top(counts: dict[str, int], slugs: list[str], installed: set[str]) -> list[str]:
    ranked = sorted((s for s in slugs if s not in installed), key=lambda s: (-counts.get(s, 0), s))
    return ranked[:10]


async def _new_database(admin_dsn: str, name: str) -> str:
    conn = await db.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    parts = urlsplit(admin_dsn)
    return urlunsplit(parts._replace(path="/" + name))


def latency(args: argparse.Namespace, admin_dsn: str, tmp: Path, rng: np.random.Generator
            ) -> dict[str, Any]:  # fmt: skip
    rows, stacks = catalog(10_000, rng)
    population = generate(10_000, rows, stacks, rng, describe=0.3)
    dsn = asyncio.run(_new_database(admin_dsn, "latency"))
    asyncio.run(load(dsn, rows, population))
    _, built = asyncio.run(snapshot_of(dsn))
    keys, port = ServiceKeys.generate(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDOS_")}
    env |= {"DATABASE_URL": dsn, "SEEDOS_ENV": "production", **keys.env(),
            "SEEDOS_INTERNAL_TOKEN_MAX_LIFETIME_SECONDS": "3600",
            "SEEDOS_LOG_LEVEL": "WARNING", "SEEDOS_LOG_FORMAT": "json",
            "SEEDOS_DATA_DIR": str(tmp / "data"),
            # rebuilds during the measurement, not only before it
            "SEEDOS_MARKETPLACE_RECOMMENDATIONS_REFRESH_SECONDS": str(args.refresh_seconds),
            }  # fmt: skip
    supervisor = Supervisor(env, log_path=tmp / "marketplace.log")
    url = f"http://127.0.0.1:{port}"
    try:
        supervisor.start(ServiceSpec("marketplace_service", "marketplace_service.app:create_app"),
                         port)  # fmt: skip
        supervisor.wait_ready({"marketplace_service": url}, timeout=60)
        signer = keys.signer(ttl=3600)
        sample = [population[i] for i in rng.choice(len(population), size=500, replace=False)]
        tokens = [signer.mint(Principal(tenant_id=t.id, subject="apikey:bench", role="viewer"),
                              audience="marketplace_service") for t in sample]  # fmt: skip
        slugs = [rows[i]["slug"] for i in rng.choice(len(rows), size=500)]
        times: dict[str, list[float]] = {"recommendations": [], "catalog entry (reference)": []}
        run_started = time.perf_counter()
        with httpx.Client(base_url=url, timeout=30) as client:
            for n in range(args.requests + 200):  # the first 200 of each warm up
                auth = {"Authorization": f"Bearer {tokens[n % len(tokens)]}"}
                for name, path in (
                    ("recommendations", "/api/v1/marketplace/recommendations?k=10"),
                    (
                        "catalog entry (reference)",
                        f"/api/v1/marketplace/connectors/{slugs[n % len(slugs)]}",
                    ),
                ):
                    started = time.perf_counter()
                    r = client.get(path, headers=auth)
                    elapsed = time.perf_counter() - started
                    if r.status_code != 200:
                        raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
                    if n >= 200:
                        times[name].append(elapsed * 1000)
            example = client.get("/api/v1/marketplace/recommendations?k=3", headers={
                "Authorization": f"Bearer {tokens[0]}"}).json()  # fmt: skip
        measured = time.perf_counter() - run_started
    finally:
        supervisor.stop()
    return {
        "catalog": len(rows), "tenants": len(population),
        "installs": sum(len(t.installed) for t in population),
        "snapshot_build_seconds": built, "requests_each": args.requests,
        "refresh_seconds": args.refresh_seconds, "seconds": measured,
        "ms": {name: {"p50": _pct(v, 50), "p90": _pct(v, 90), "p99": _pct(v, 99),
                      "max": max(v)} for name, v in times.items()},
        "example": example,
    }  # fmt: skip


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


def report(q: dict[str, Any], lat: dict[str, Any]) -> None:
    print(
        f"\nQuality: {q['tenants']:,} tenants, {q['catalog']} connectors, one install hidden per"
        f" tenant (mean {q['mean_installs_before_hiding']:.2f} installs before hiding)"
    )
    print(f"{'ranker':<22}{'precision@5':>13}{'recall@10':>11}")
    for name, f in q["figures"].items():
        print(f"{name:<22}{f['precision@5']:>13.4f}{f['recall@10']:>11.4f}")
    ratio = q["ratio_to_better_baseline"]
    print(
        f"engine / better baseline on precision@5: {ratio:.2f}x (target >= 1.3: "
        f"{'met' if ratio >= 1.3 else 'MISSED'})"
    )
    print(
        f"\nLatency: {lat['catalog']:,} catalog entries, {lat['tenants']:,} tenants,"
        f" {lat['installs']:,} installs; snapshot built in {lat['snapshot_build_seconds']:.2f} s;"
        f" {lat['seconds']:.0f} s of requests, statistics rebuilt every"
        f" {lat['refresh_seconds']:g} s meanwhile"
    )
    print(f"{'request':<28}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, m in lat["ms"].items():
        print(f"{name:<28}{m['p50']:>9.2f}{m['p90']:>9.2f}{m['p99']:>9.2f}{m['max']:>9.2f}")
    p99 = lat["ms"]["recommendations"]["p99"]
    print(f"recommendations p99 {p99:.1f} ms (target <= 50: {'met' if p99 <= 50 else 'MISSED'})")
    first = lat["example"]["items"][0]
    print(f"\nexample: {first['name']} score {first['score']}: {first['reason']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=6000, help="quality population (>= 5000)")
    parser.add_argument("--requests", type=int, default=2000, help="timed requests of each kind")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--refresh-seconds",
        type=float,
        default=10.0,
        help="the service's statistics rebuild interval during the latency run",
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="seedos-bench-recs-"))
    server = embedded.start(tmp / "pg", cleanup_mode="delete")
    try:
        admin_dsn = embedded.dsn(server)
        print("quality: generating and loading the population ...", file=sys.stderr)
        q = quality(args, admin_dsn, rng)
        print("latency: loading 10k x 10k and starting marketplace_service ...", file=sys.stderr)
        lat = latency(args, admin_dsn, tmp, rng)
    except KeyboardInterrupt:
        return 130
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    report(q, lat)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "quality": q, "latency": lat},
                                        indent=2, default=str))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
