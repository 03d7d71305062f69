"""RecommendationEngine: connectors a tenant has not installed, best first, each with a score
and the reasons behind it.

The score starts from the **next-install model** (:mod:`marketplace_service.recommendations.model`):
a linear estimate of the chance each connector is the tenant's next install, from the connectors
it has, its industry and its company-size band, plus a small share of the smoothed install rate
among similar tenants (the *segment prior*, which is all there is when the platform has little
data). That estimate is then multiplied by factors:

- **description**: ``exp(weight x cosine)``, TF-IDF similarity between the tenant's description
  and the entry's;
- **featured**: x2 for featured connectors, for a tenant with nothing installed yet;
- **health**: connectors whose calls failed often in the recent window are demoted.

Each part that counts is a reason with the ``weight`` it added to the log of the score: for the
model's parts (the segment, the connectors had) how much lower the log-score would be without
them, for the factors the log of the factor. The shared statistics come from a snapshot rebuilt
in the background; the caller's profile and installs are read on every request, so an install
shows in the very next answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import multiprocessing
import os
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import numpy as np
import structlog
from cachetools import LRUCache
from prometheus_client import Counter, Histogram

from common.errors import NotFound, ServiceUnavailable
from marketplace_service.recommendations import repository
from marketplace_service.recommendations.model import (
    Prior,
    Snapshot,
    band_label,
    build,
    normalise_industry,
    percent,
    size_band,
)
from marketplace_service.recommendations.text import Match

BUILD_TIMEOUT_SECONDS = (
    300.0  # a build (a worker reading the database) that takes longer is abandoned
)
WORKER_NICE = 10  # the rebuilding process yields the CPU to the service and PostgreSQL
log = structlog.get_logger(component="marketplace_service.recommendations")

REFRESH_SECONDS = Histogram(
    "seedos_recommendations_refresh_duration_seconds",
    "Rebuilding the statistics recommendations share (read and build, in a worker process).",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
REFRESH_FAILURES = Counter(
    "seedos_recommendations_refresh_failures_total",
    "Rebuilds of the recommendation statistics that failed (the previous ones keep serving).",
)

FEATURED_BONUS = math.log(2.0)
MIN_WEIGHT_TO_SAY = 0.05  # a part that moved the log-score less than this is not a reason
MIN_PENALTY_TO_SAY = -0.2  # "ranked lower: ..." from odds x 0.82 (an 8% smoothed error rate)
MAX_PAIRS_SAID = 2  # installed connectors a co-installation reason names with their figures


class TenantNotFound(NotFound):
    code, title = "tenant_not_found", "Tenant not found"


@dataclass(frozen=True, slots=True)
class Profile:
    industry: str | None
    size: int | None
    description: str | None = None


def recommend(
    snap: Snapshot, profile: Profile, installed: set[str], *, k: int, match: Match | None = None
) -> list[dict[str, Any]]:
    """The top ``k`` of the catalog for this profile, never one of ``installed`` (services)."""
    if len(snap) == 0:
        return []
    context = _Context.of(snap, profile, installed, match)
    ranked, total = _ranked(context, k)
    return [context.explain(j, float(total[j])) for j in ranked]


def rank(
    snap: Snapshot, profile: Profile, installed: set[str], *, k: int, match: Match | None = None
) -> list[str]:
    """The slugs ``recommend`` answers, best first, without writing their reasons (for
    evaluating the ranking over many tenants)."""
    if len(snap) == 0:
        return []
    ranked, _ = _ranked(_Context.of(snap, profile, installed, match), k)
    return [snap.catalog.slugs[j] for j in ranked]


def _ranked(context: _Context, k: int) -> tuple[list[int], np.ndarray]:
    """The top ``k`` entries not installed, best first (ties by slug), and every log-score."""
    snap, total = context.snap, context.log_score()
    n = len(snap)
    k = min(k, n - len(context.owned))
    if k <= 0:
        return [], total
    top = np.argpartition(-total, k - 1)[:k] if k < n else np.arange(n)
    return sorted(top.tolist(), key=lambda j: (-total[j], snap.catalog.slugs[j])), total


@dataclass
class _Context:
    snap: Snapshot
    prior: Prior
    rates: np.ndarray
    owned: list[int]
    had: list[int]  # the owned connectors the model has rows for (the first rows of ``rows``)
    rows: list[int]  # the model rows of what the tenant has: its connectors, then its profile
    learned: np.ndarray  # the model's estimate over the catalog (0 where not modelled)
    prior_part: np.ndarray  # the segment prior's share of the estimate
    match: Match | None
    description_weight: float
    band: int | None = None
    n_profile: int = 0  # the tenant's profile rows (after its connectors' in ``rows``)

    @classmethod
    def of(cls, snap: Snapshot, profile: Profile, installed: set[str], match: Match | None
           ) -> _Context:  # fmt: skip
        industry, band = normalise_industry(profile.industry), size_band(profile.size)
        prior = snap.prior(industry, band)
        rates = np.clip(prior.rates, 1e-6, 1 - 1e-6)
        owned = sorted({snap.index_of[s] for s in installed if s in snap.index_of})
        learned = np.zeros(len(snap))
        had: list[int] = []
        rows: list[int] = []
        n_profile = 0
        if (model := snap.model) is not None and len(model.items):
            had = [i for i in owned if model.row_of[i] >= 0]
            rows = model.rows(owned, industry, band)
            n_profile = len(model.profile_rows(industry, band))
            learned[model.items] = model.weights[rows].sum(axis=0, dtype=np.float64)
        share = snap.params.prior_share
        prior_part = share * rates / rates.sum()
        return cls(snap, prior, rates, owned, had, rows, learned, prior_part, match,
                   snap.params.description_weight, band, n_profile)  # fmt: skip

    def estimate(self) -> np.ndarray:
        return np.maximum(self.learned, 0.0) + self.prior_part

    def log_score(self) -> np.ndarray:
        total = np.log(self.estimate()) + self.snap.health_penalty
        if self.match is not None:
            total += self.description_weight * self.match.scores
        if not self.owned:
            total[self.snap.catalog.featured] += FEATURED_BONUS
        if self.owned:
            total[self.owned] = -np.inf
        return total

    def explain(self, j: int, log_score: float) -> dict[str, Any]:
        snap, cat = self.snap, self.snap.catalog
        reasons = [self._prior_reason(j)]
        if (co := self._co_reason(j)) is not None:
            reasons.append(co)
        if self.match is not None and (s := float(self.match.scores[j])) >= 0.05:
            words = ", ".join(snap.text.shared_words(self.match, j))
            reasons.append(_reason("description", f"matches your description ({words})",
                                   self.description_weight * s))  # fmt: skip
        if not self.owned and cat.featured[j]:
            reasons.append(_reason("featured", "featured in the marketplace", FEATURED_BONUS))
        if snap.health_penalty[j] < MIN_PENALTY_TO_SAY:
            days = max(round(snap.health_window_seconds / 86400), 1)
            failed, calls = int(snap.error_counts[j]), int(snap.error_calls[j])
            text = (f"ranked lower: {percent(failed / calls)} of its calls failed in the last"
                    f" {days} day{'s' if days > 1 else ''} ({failed:,} of {calls:,})")  # fmt: skip
            reasons.append(_reason("health", text, float(snap.health_penalty[j])))
        reasons.sort(key=lambda r: -r["weight"])
        odds = math.exp(min(log_score, 50.0))
        return {
            "slug": cat.slugs[j], "name": cat.names[j], "category": cat.categories[j],
            "vendor": cat.vendors[j], "logo_url": cat.logo_urls[j],
            "is_featured": bool(cat.featured[j]),
            "verification": cat.verifications[j] if j < len(cat.verifications) else None,
            "score": float(f"{odds / (1.0 + odds):.4g}"),
            "reason": reasons[0]["text"], "reasons": reasons,
        }  # fmt: skip

    def _contributions(self, j: int) -> np.ndarray:
        """What each of the tenant's model rows added to connector ``j``'s estimate."""
        model = self.snap.model
        if model is None or not self.rows or model.row_of[j] < 0:
            return np.zeros(len(self.rows))
        return model.weights[self.rows, model.row_of[j]].astype(np.float64)

    def _without(self, j: int, removed: float, prior_part: float | None = None) -> float:
        """The log of the estimate, less the log of it without ``removed`` (and with another
        prior part): how much that part raised (or lowered) the log-score."""
        base = self.prior_part[j] if prior_part is None else prior_part
        with_it = max(self.learned[j], 0.0) + self.prior_part[j]
        without = max(self.learned[j] - removed, 0.0) + base
        return math.log(with_it) - math.log(without)

    def _prior_reason(self, j: int) -> dict[str, Any]:
        """The segment: the model's industry and size-band rows, and the segment's prior rate
        in place of everyone's. The text names every part that counted: a size band the model
        used but the prior did not (the industry has no tenant of that size) gets a figure of
        its own."""
        snap, rate = self.snap, float(self.rates[j])
        contributions = self._contributions(j)
        first = len(self.had)
        profile = float(contributions[first : first + self.n_profile].sum())
        weight = self._without(j, profile, float(snap.everyone_part[j]))
        text = f"used by {percent(rate)} of {self.prior.label}"
        model, band = snap.model, self.band
        if (band is not None and self.prior.band is None and model is not None
                and ("band", band) in model.profile_row):  # fmt: skip
            by_size = float(snap.prior(None, band).rates[j])
            text += f"; by {percent(by_size)} of companies of your size ({band_label(band)})"
        return _reason("segment", text, weight, rate=round(rate, 4),
                       tenants=self.prior.tenants)  # fmt: skip

    def _co_reason(self, j: int) -> dict[str, Any] | None:
        """What the tenant's connectors did to the estimate, in one reason: those that raised
        it when together they raised it, those that lowered it when they lowered it (two
        CRMs), strongest first, each with a figure that agrees with what it did, when there
        is one: how common the connector is among companies with it against everyone
        ("1.8x the usual rate"), or, for one that raised it, how many added it afterwards."""
        model = self.snap.model
        if model is None or not self.owned:
            return None
        had = self.had
        per = self._contributions(j)[: len(had)]
        # with its connectors the tenant is also at a later stage: without them, at stage 0
        staged = 0.0
        if model.stage_row is not None and model.row_of[j] >= 0:
            column = model.weights[:, model.row_of[j]]
            staged = float(column[model.stage(len(had))] - column[model.stage(0)])
        weight = self._without(j, float(per.sum()) + staged)
        if abs(weight) < MIN_WEIGHT_TO_SAY:
            return None
        raised = weight > 0
        sign = 1.0 if raised else -1.0
        named = sorted((p for p in zip(per.tolist(), had, strict=True) if sign * p[0] > 0),
                       key=lambda p: -sign * p[0])  # fmt: skip
        if not named:
            return None
        names, slugs = self.snap.catalog.names, self.snap.catalog.slugs
        share = float(self.snap.install_share[j])
        figures = []
        for _, i in named[:MAX_PAIRS_SAID]:
            having, co = int(self.snap.installs[i]), self.snap.co_count(i, j)
            if not having:
                continue
            lift = (co / having) / max(share, 1e-9)
            if (round(lift, 1) > 1.0) if raised else (round(lift, 1) < 1.0):
                figures.append(f"{percent(co / having)} of the {having:,} companies with"
                               f" {names[i]} use it ({lift:.1f}x the usual rate)")  # fmt: skip
            elif raised and (after := self.snap.after_count(i, j)):
                figures.append(f"{percent(after / having)} of the {having:,} companies with"
                               f" {names[i]} added it after {names[i]}")  # fmt: skip
        said = [names[i] for _, i in named[:MAX_PAIRS_SAID]]
        more = len(named) - len(said)
        who = f"{', '.join(said)} and {more} more" if more else _listing(said)
        text = f"{'likely' if raised else 'less likely'} with {who}"
        if figures:
            text += f": {'; '.join(figures)}"
        return _reason("co_installed", text, weight, with_connector=slugs[named[0][1]],
                       with_connectors=[slugs[i] for _, i in named])  # fmt: skip


def _listing(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _reason(kind: str, text: str, weight: float, **data: Any) -> dict[str, Any]:
    return {"kind": kind, "text": text, "weight": round(weight, 3), **data}


class RecommendationEngine:
    """Holds the shared snapshot, rebuilds it every ``refresh_seconds`` in the background, and
    answers per tenant with that tenant's profile and installs read fresh."""

    def __init__(self, dsn: str, *, refresh_seconds: float, health_window_seconds: int) -> None:
        self._dsn = dsn
        self.refresh_seconds = refresh_seconds
        self.health_window_seconds = health_window_seconds
        self.snapshot: Snapshot | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._executor: ProcessPoolExecutor | None = None
        self._matches: LRUCache[tuple[int, str], Match | None] = LRUCache(maxsize=1024)

    async def refresh(self, *, only_if_missing: bool = False) -> Snapshot:
        async with self._lock:
            if only_if_missing and self.snapshot is not None:
                return self.snapshot  # built meanwhile by the background task
            # Reading 10k tenants and building takes seconds of Python. In a thread it held the
            # GIL against requests (p99 262 ms during a rebuild); handing the rows to a process
            # cost 0.6 s of pickling here. So a worker process reads and builds, and sends back
            # arrays and flat columns that unpickle in milliseconds.
            job = functools.partial(
                build_from_database, self._dsn, health_window_seconds=self.health_window_seconds
            )
            started = time.perf_counter()
            try:
                snap = await asyncio.wait_for(
                    asyncio.get_running_loop().run_in_executor(self._builder(), job),
                    BUILD_TIMEOUT_SECONDS,
                )
            except Exception as exc:
                REFRESH_FAILURES.inc()
                if isinstance(exc, BrokenProcessPool | TimeoutError):
                    # a dead (or stuck) worker: the next refresh starts a new one
                    self._reset_builder()
                raise
            REFRESH_SECONDS.observe(time.perf_counter() - started)
            self.snapshot = snap
            self._matches.clear()
            log.info("recommendations_refreshed", items=len(snap), tenants=snap.n_tenants)
            return snap

    def _reset_builder(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _builder(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # spawn, not fork: this process runs an event loop and threads. Niced: a rebuild
            # (seconds of CPU at 10,000 tenants) is background work, and on a small machine it
            # would take a core from the requests and PostgreSQL
            context = multiprocessing.get_context("spawn")
            self._executor = ProcessPoolExecutor(
                max_workers=1, mp_context=context, initializer=_worker_start,
                initargs=(WORKER_NICE, os.getpid()),
            )  # fmt: skip
        return self._executor

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="recommendations-refresh")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        executor, self._executor = self._executor, None
        if executor is not None:
            # waited for (in a thread), so that the worker exits and the pool's semaphores are
            # released before this process does: otherwise multiprocessing's resource tracker
            # warns of leaked semaphores on every stop
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # the last snapshot keeps serving; try again next tick
                log.warning("recommendations_refresh_failed", error=type(exc).__name__)
            await asyncio.sleep(self.refresh_seconds)

    async def for_tenant(
        self, conn: asyncpg.Connection, tenant_id: uuid.UUID, *, k: int
    ) -> dict[str, Any]:
        row = await repository.caller(conn, tenant_id)
        if row is None:
            raise TenantNotFound()
        snap = self.snapshot or await self._first_snapshot()
        profile = Profile(row["industry"], row["size"], row["description"])
        match = self._match(snap, profile.description)
        items = recommend(snap, profile, set(row["services"]), k=k, match=match)
        band = size_band(profile.size)
        return {
            "items": items,
            "profile": {
                "industry": normalise_industry(profile.industry),
                "size_band": None if band is None else band_label(band),
                "description_used": match is not None,
                "installed": len(row["services"]),
            },
            "as_of": snap.built_at,
        }

    async def _first_snapshot(self) -> Snapshot:
        """Only before the first build has succeeded (just started, or the database was down)."""
        try:
            return await self.refresh(only_if_missing=True)
        except Exception as exc:
            log.warning("recommendations_refresh_failed", error=type(exc).__name__)
            raise ServiceUnavailable(
                "recommendations are not ready yet; retry shortly",
                code="recommendations_unavailable", headers={"Retry-After": "5"},
            ) from None  # fmt: skip

    def _match(self, snap: Snapshot, description: str | None) -> Match | None:
        if not description:
            return None
        key = (id(snap), description)
        if key not in self._matches:
            self._matches[key] = snap.text.match(description)
        return self._matches[key]


def _worker_start(nice: int, service: int) -> None:
    """In the worker: a lower CPU priority, and an end when the service (pid ``service``) ends
    however it ends (a killed service leaves its pool's worker waiting forever otherwise,
    holding its memory), also when it ended while this process was still starting."""
    os.nice(nice)

    def watch() -> None:
        while os.getppid() == service:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-service", daemon=True).start()


def build_from_database(dsn: str, *, health_window_seconds: int) -> Snapshot:
    """Read what the statistics need and build them (run in the worker process)."""
    return asyncio.run(_read_and_build(dsn, health_window_seconds))


async def _read_and_build(dsn: str, health_window_seconds: int) -> Snapshot:
    as_of = datetime.now(UTC)  # before the reads: what was committed by then is in
    conn = await asyncpg.connect(
        dsn, command_timeout=BUILD_TIMEOUT_SECONDS,
        server_settings={"application_name": "recommendations"},
    )  # fmt: skip
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            items = await repository.catalog(conn)
            tenants = await repository.tenants_with_installs(conn)
            health = await repository.health(conn, window_seconds=health_window_seconds)
    finally:
        await conn.close()
    return build(
        items=items, tenants=tenants, health=health, built_at=as_of,
        health_window_seconds=health_window_seconds,
    )  # fmt: skip
