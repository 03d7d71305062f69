"""Recommendation quality against the field's baselines, and latency at 10k x 10k.

Usage (no manual setup)::

    .venv/bin/python bench/recommendations.py [--tenants 5000] [--seeds 5] [--jobs 2]
        [--scenarios stacks,sequential,...] [--requests 2000] [--skip-latency] [--json out.json]

Quality (``bench/recs/``; docs/recommendations-evaluation.md explains every choice). Five
scenarios, each a generator and a split: ``stacks`` (one install hidden at random),
``sequential`` and ``migrations`` (each tenant's last install hidden: what comes next),
``freetext`` (one hidden at random; industries as people write them, descriptions) and
``temporal`` (the sequential population cut in time: the installs of the last four months are
relevant). For each scenario and seed a population of ``--tenants`` is generated and split;
every ranker (the engine and seven baselines: most popular, popular in segment, item-kNN with
plain co-occurrence counts, item-kNN normalised, item-kNN by install order, EASE, EASE given
the profile) is tuned by grid search on a validation
split made from the training data alone by the same rule, refitted on the training data with
the winning parameters and scored once on the test cases: precision@5, recall@10, NDCG@10,
catalog coverage, and slices by how many installs the tenant had (0, 1, 0-1, 2-4, 5+; the
summary prints 0-1 and 5+). Figures
are means over seeds with 95% confidence intervals (Student's t). The engine is the service's
own code: ``model.build`` (what the refresh worker runs) and ``engine.recommend`` (what the
route calls). A check loads one split into PostgreSQL and builds the statistics through
``RecommendationEngine.refresh`` (the worker process reading the database) to show that the
service ranks exactly as the in-process engine does.

Latency. A database gets 10,000 catalog entries (the 140 plus generated long-tail entries with
descriptions, grouped into small stacks of their own) and 10,000 tenants from the ``stacks``
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
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from machine import machine  # noqa: E402  (bench/machine.py)
from recs import evaluate, rankers  # noqa: E402  (bench/recs/)
from recs.generators import GENERATORS, HORIZON_DAYS, Tenant, stacks  # noqa: E402
from recs.markdown import ci  # noqa: E402

from common import db, embedded, migrate  # noqa: E402
from common.internal_auth import Principal  # noqa: E402
from marketplace_service.recommendations.engine import (  # noqa: E402
    RecommendationEngine,
)
from seedos_cli.deployment_keys import ServiceKeys  # noqa: E402
from seedos_cli.supervisor import ServiceSpec, Supervisor  # noqa: E402
from seedos_sdk.testing import free_port  # noqa: E402

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)  # day 0 of the generators' histories
SCENARIOS = {  # name: (generator, split)
    "stacks": ("stacks", "random"),
    "sequential": ("sequential", "last"),
    "migrations": ("migrations", "last"),
    "freetext": ("freetext", "random"),
    "temporal": ("sequential", "temporal"),
}
BASELINES = ("most popular", "popular in segment", "item-kNN (co-occurrence counts)",
             "item-kNN (normalised)", "item-kNN (installed after)", "EASE",
             "EASE + profile")  # fmt: skip


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
            "integration_connectors",
            columns=["tenant_id", "connector_name", "service_name", "created_at"],
            records=[(t.id, s, s, EPOCH + timedelta(days=day)) for t in tenants
                     for s, day in t.events],
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


class Ceiling(rankers._Matrix):
    """Not a recommender: ranks with what the generator knows and no ranker can see, as an
    estimate of how far any ranker can go. ``stacks``, ``freetext``: each tenant's planted
    stacks first, then by popularity. ``sequential`` (last split): the very chances the
    generator drew the hidden install from (the tenant's ecosystem and filled needs known)."""

    name = "ceiling (the generator's hidden state)"

    def fit(self, rows: list[dict], train: list[Tenant], params: dict[str, Any]) -> None:
        self._base(rows, train)

    def top(self, case: evaluate.Case, k: int) -> list[str]:
        scores = self.counts / 1e6
        if "stacks" in case.tenant.extra:
            for slug in case.tenant.extra["stacks"]:
                scores[self.index[slug]] += 1.0
        for slug, p in (case.tenant.extra.get("next") or {}).items():
            scores[self.index[slug]] += p
        return self._top(scores, case, k)


def _split(scenario: str, tenants: int, seed: int) -> tuple[list[dict], evaluate.Split,
                                                             evaluate.Split]:  # fmt: skip
    generator, split = SCENARIOS[scenario]
    rng = np.random.default_rng([seed, list(SCENARIOS).index(scenario)])
    rows, population = GENERATORS[generator](tenants, rng)
    protocol = evaluate.protocol(split, HORIZON_DAYS)
    test = protocol.test(population, rng)
    return rows, test, protocol.validation(test.train, rng)


def run_one(scenario: str, tenants: int, seed: int) -> dict[str, Any]:
    """One population: every ranker tuned on validation, scored on test."""
    started = time.perf_counter()
    rows, test, validation = _split(scenario, tenants, seed)
    contenders = [*rankers.baselines(), rankers.Engine(descriptions=scenario == "freetext")]
    out: dict[str, Any] = {}
    for ranker in contenders:
        params, tried = evaluate.tune(ranker, rows, validation)
        ranker.fit(rows, test.train, params)
        result = evaluate.score(ranker, test.cases, len(rows)).as_dict()
        best = max(tried, key=lambda t: (t["precision@5"], t["ndcg@10"]))
        out[ranker.name] = {**result, "params": params, "validation@5": best["precision@5"]}
    shipped = rankers.Engine(descriptions=False)
    shipped.fit(rows, test.train, {})  # the service's defaults, untuned
    out["engine (shipped defaults)"] = evaluate.score(shipped, test.cases, len(rows)).as_dict()
    if scenario in ("stacks", "freetext", "sequential"):
        ceiling = Ceiling()
        ceiling.fit(rows, test.train, {})
        out[ceiling.name] = evaluate.score(ceiling, test.cases, len(rows)).as_dict()
    return {"scenario": scenario, "seed": seed, "catalog": len(rows), "cases": len(test.cases),
            "train_installs": sum(len(t.events) for t in test.train),
            "seconds": time.perf_counter() - started, "rankers": out}  # fmt: skip


def _ratios(runs: list[dict[str, Any]], engine: str, baseline: str, part: str | None = None
            ) -> tuple[float, float] | None:  # fmt: skip
    """``engine``'s precision@5 over ``baseline``'s (in the slice ``part``), seed by seed,
    as a mean and its interval (None when no seed has the slice)."""
    values = []
    for run in runs:
        a, b = (run["rankers"][name] for name in (engine, baseline))
        if part is not None:
            a, b = a["slices"].get(part), b["slices"].get(part)
            if a is None or b is None:
                continue
        if b["precision@5"]:
            values.append(a["precision@5"] / b["precision@5"])
    return evaluate.interval(values) if values else None


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Means and 95% intervals over seeds, per scenario and ranker; the engine's ratio to the
    best baseline (the baseline with the best mean test precision@5) per seed."""
    out: dict[str, Any] = {}
    for scenario in dict.fromkeys(r["scenario"] for r in runs):
        mine = [r for r in runs if r["scenario"] == scenario]
        names = list(mine[0]["rankers"])
        table = {}
        for name in names:
            figures = [r["rankers"][name] for r in mine]
            row = {m: evaluate.interval([f[m] for f in figures])
                   for m in ("precision@5", "recall@10", "ndcg@10", "coverage@10")}  # fmt: skip
            for slice_name in ("0", "1", "0-1", "5+"):
                values = [f["slices"][slice_name]["precision@5"] for f in figures
                          if slice_name in f["slices"]]  # fmt: skip
                if values:
                    row[f"precision@5 [{slice_name}]"] = evaluate.interval(values)
            if "params" in figures[0]:
                row["params"] = [f["params"] for f in figures]
            table[name] = row
        best = max(BASELINES, key=lambda b: table[b]["precision@5"][0])

        out[scenario] = {
            "seeds": [r["seed"] for r in mine], "catalog": mine[0]["catalog"],
            "cases": evaluate.interval([r["cases"] for r in mine])[0],
            "best_baseline": best,
            "ratio": _ratios(mine, "engine", best),
            "ratio_shipped": _ratios(mine, "engine (shipped defaults)", best),
            "cold_ratio": _ratios(mine, "engine", "popular in segment", "0-1"),
            "cold_ratio_shipped": _ratios(mine, "engine (shipped defaults)",
                                          "popular in segment", "0-1"),
            "new_tenant_ratio": _ratios(mine, "engine", "popular in segment", "0"),
            "rankers": table,
        }  # fmt: skip
    return out


def quality(args: argparse.Namespace) -> list[dict[str, Any]]:
    jobs = [(s, args.tenants, seed) for s in args.scenarios for seed in range(1, args.seeds + 1)]
    if args.jobs <= 1:
        return [run_one(*job) for job in jobs]
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_one, *job) for job in jobs]
        return [f.result() for f in futures]


def through_the_database(args: argparse.Namespace, admin_dsn: str) -> dict[str, Any]:
    """The ``stacks`` split of seed 1 written to PostgreSQL, the statistics built by the
    service's refresh (a worker process reading the database), and the service's ranking of
    every test case compared with the in-process engine's (the service's defaults)."""
    rows, test, _ = _split("stacks", args.tenants, 1)
    dsn = asyncio.run(_new_database(admin_dsn, "quality"))
    asyncio.run(load(dsn, rows, test.train))
    snap, built = asyncio.run(snapshot_of(dsn))
    mine = rankers.Engine(descriptions=False)
    mine.fit(rows, test.train, {})
    served = rankers.Engine(descriptions=False)
    served.snapshot, served.matches = snap, {}
    same = sum(served.top(c, 10) == mine.top(c, 10) for c in test.cases)
    if same != len(test.cases):
        raise SystemExit(f"the service ranks differently from the in-process engine for"
                         f" {len(test.cases) - same} of {len(test.cases)} cases")  # fmt: skip
    return {"cases": len(test.cases), "identical": same, "snapshot_build_seconds": built,
            "tenants": snap.n_tenants, "model_examples": snap.model.examples}  # fmt: skip


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
    rows, population = stacks(10_000, rng, n_items=10_000, describe=0.3)
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
        "installs": sum(len(t.events) for t in population),
        "snapshot_build_seconds": built, "requests_each": args.requests,
        "refresh_seconds": args.refresh_seconds, "seconds": measured,
        "ms": {name: {"p50": _pct(v, 50), "p90": _pct(v, 90), "p99": _pct(v, 99),
                      "max": max(v)} for name, v in times.items()},
        "example": example,
    }  # fmt: skip


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


def report_quality(summary: dict[str, Any], db_check: dict[str, Any] | None) -> None:
    for scenario, s in summary.items():
        print(
            f"\n{scenario} ({SCENARIOS[scenario][0]} generator, {SCENARIOS[scenario][1]} split;"
            f" {s['catalog']} connectors, ~{s['cases']:.0f} test cases, seeds {s['seeds']})"
        )
        print(
            f"{'ranker':<36}{'precision@5':>18}{'recall@10':>18}{'NDCG@10':>18}"
            f"{'coverage':>10}{'P@5 [0-1]':>18}{'P@5 [5+]':>18}"
        )
        for name, row in s["rankers"].items():
            cold = ci(row["precision@5 [0-1]"], 4) if "precision@5 [0-1]" in row else "-"
            warm = ci(row["precision@5 [5+]"], 4) if "precision@5 [5+]" in row else "-"
            print(
                f"{name:<36}{ci(row['precision@5'], 4):>18}{ci(row['recall@10'], 4):>18}"
                f"{ci(row['ndcg@10'], 4):>18}{row['coverage@10'][0]:>10.2f}{cold:>18}{warm:>18}"
            )
        for key, what, target in (
            ("ratio", f"best baseline ({s['best_baseline']}), precision@5", 1.2),
            ("ratio_shipped", "the same, the engine with its shipped defaults", 1.2),
            ("cold_ratio", "popular in segment, tenants with 0-1 installs", 1.5),
            ("cold_ratio_shipped", "the same, the engine with its shipped defaults", 1.5),
            ("new_tenant_ratio", "popular in segment, tenants with 0 installs", None),
        ):
            if (value := s[key]) is None:
                continue
            verdict = ""
            if target is not None:
                met = "met" if value[0] >= target else "MISSED"
                verdict = f" (target >= {target:g}, on the mean: {met})"
            print(f"engine / {what}: {ci(value, 2)}x{verdict}")
    if db_check:
        print(
            f"\nthrough the database: the service's refresh built the statistics of"
            f" {db_check['tenants']:,} tenants in {db_check['snapshot_build_seconds']:.2f} s;"
            f" its top 10 equals the in-process engine's for {db_check['identical']:,} of"
            f" {db_check['cases']:,} test cases"
        )


def report_latency(lat: dict[str, Any]) -> None:
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
    parser.add_argument("--tenants", type=int, default=5000, help="population per scenario")
    parser.add_argument("--seeds", type=int, default=5, help="populations per scenario")
    parser.add_argument("--jobs", type=int, default=2, help="populations evaluated at once")
    parser.add_argument("--scenarios", type=lambda v: v.split(","), default=list(SCENARIOS))
    parser.add_argument("--requests", type=int, default=2000, help="timed requests of each kind")
    parser.add_argument("--seed", type=int, default=7, help="the latency population's seed")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument(
        "--refresh-seconds", type=float, default=10.0,
        help="the service's statistics rebuild interval during the latency run",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    summary, runs, db_check, lat = None, [], None, None
    if not args.skip_quality:
        print(f"quality: {len(args.scenarios)} scenarios x {args.seeds} seeds ...", file=sys.stderr)
        runs = quality(args)
        summary = summarise(runs)
    tmp = Path(tempfile.mkdtemp(prefix="seedos-bench-recs-"))
    server = embedded.start(tmp / "pg", cleanup_mode="delete")
    try:
        admin_dsn = embedded.dsn(server)
        if not args.skip_quality:
            print("quality: the same ranking through the database ...", file=sys.stderr)
            db_check = through_the_database(args, admin_dsn)
        if not args.skip_latency:
            print("latency: loading 10k x 10k and starting marketplace_service ...",
                  file=sys.stderr)  # fmt: skip
            lat = latency(args, admin_dsn, tmp, np.random.default_rng(args.seed))
    except KeyboardInterrupt:
        return 130
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    if summary:
        report_quality(summary, db_check)
    if lat:
        report_latency(lat)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "quality": summary, "runs": runs,
                                         "database_check": db_check, "latency": lat},
                                        indent=2, default=str))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
