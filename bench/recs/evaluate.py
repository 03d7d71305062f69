"""Splits, metrics and the tuning procedure every ranker goes through alike.

A *case* is one tenant at one moment: its profile, the installs it had then (``visible``,
oldest first) and the installs it went on to make (``relevant``). Rankers are fitted on a
*train* population (everyone's visible installs), tuned on a validation split made from the
train population alone by the same rule, refitted on the whole train population with the
parameters that won, and scored once on the test cases.

Splits:

- ``random``: one install per tenant hidden at random (the original bench's protocol);
- ``last``: each tenant's last install hidden (the "what next" question);
- ``temporal``: a cut in time; everything before it is known, the installs each tenant made in
  the following period are relevant (tenants who joined after the cut have nothing visible).
  Validation uses an earlier cut of the same length.

Metrics (per case, then averaged): precision@5 (relevant items in the top 5, over 5),
recall@10 (relevant items in the top 10, over all relevant), NDCG@10 (binary gains,
log2-discounted, over the ideal), and the catalog coverage of the top 10 over all cases.
Slices by how many installs were visible: 0, 1, 2-4, 5+.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from recs.generators import Tenant


@dataclass(frozen=True)
class Case:
    industry: str | None
    size: int
    description: str | None
    visible: tuple[str, ...]  # oldest first
    relevant: frozenset[str]
    tenant: Tenant | None = None  # the generator's tenant, for the oracle alone


@dataclass
class Split:
    train: list[Tenant]  # each tenant with only its visible installs
    cases: list[Case]


def _case(t: Tenant, visible: list[tuple[str, float]], relevant: set[str]) -> Case:
    return Case(t.industry, t.size, t.description, tuple(s for s, _ in visible),
                frozenset(relevant), t)  # fmt: skip


def _keep(t: Tenant, events: list[tuple[str, float]]) -> Tenant:
    return Tenant(t.id, t.industry, t.size, events, t.description, t.truth_industry, t.extra)


def hide_one(tenants: Sequence[Tenant], rng: np.random.Generator, *, last: bool) -> Split:
    """One install per tenant (its last, or one at random) becomes the case's relevant item."""
    train, cases = [], []
    for t in tenants:
        if not t.events:
            train.append(t)
            continue
        k = len(t.events) - 1 if last else int(rng.integers(len(t.events)))
        visible = t.events[:k] + t.events[k + 1 :]
        train.append(_keep(t, visible))
        cases.append(_case(t, visible, {t.events[k][0]}))
    return Split(train, cases)


def cut_at(tenants: Sequence[Tenant], cut: float, end: float) -> Split:
    train, cases = [], []
    for t in tenants:
        visible = [e for e in t.events if e[1] < cut]
        after = {s for s, d in t.events if cut <= d < end} - {s for s, _ in visible}
        train.append(_keep(t, visible))
        if after:
            cases.append(_case(t, visible, after))
    return Split(train, cases)


@dataclass
class Protocol_:
    """How test and validation splits are made from a population."""

    name: str
    test: Callable[[Sequence[Tenant], np.random.Generator], Split]
    validation: Callable[[Sequence[Tenant], np.random.Generator], Split]


def protocol(name: str, horizon: float) -> Protocol_:
    if name in ("random", "last"):
        last = name == "last"
        return Protocol_(name, lambda ts, rng: hide_one(ts, rng, last=last),
                         lambda ts, rng: hide_one(ts, rng, last=last))  # fmt: skip
    if name == "temporal":
        period = horizon / 6
        cut = horizon - period
        return Protocol_(name, lambda ts, rng: cut_at(ts, cut, horizon),
                         lambda ts, rng: cut_at(ts, cut - period, cut))  # fmt: skip
    raise ValueError(name)


class Ranker(Protocol):
    name: str
    grid: list[dict[str, Any]]

    def fit(self, rows: list[dict], train: list[Tenant], params: dict[str, Any]) -> None: ...

    def top(self, case: Case, k: int) -> list[str]: ...


SLICES = {"0": (0, 0), "1": (1, 1), "2-4": (2, 4), "5+": (5, 10**9), "0-1": (0, 1)}


@dataclass
class Result:
    precision5: float
    recall10: float
    ndcg10: float
    coverage: float
    cases: int
    slices: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"precision@5": self.precision5, "recall@10": self.recall10,
                "ndcg@10": self.ndcg10, "coverage@10": self.coverage, "cases": self.cases,
                "slices": self.slices}  # fmt: skip


_DISCOUNT = 1.0 / np.log2(np.arange(2, 12))


def score(ranker: Ranker, cases: Sequence[Case], n_items: int) -> Result:
    p5, r10, nd, sizes, shown = [], [], [], [], set()
    for case in cases:
        top = ranker.top(case, 10)
        hits = np.array([s in case.relevant for s in top], dtype=float)
        p5.append(hits[:5].sum() / 5)
        r10.append(hits.sum() / len(case.relevant))
        ideal = _DISCOUNT[: min(len(case.relevant), 10)].sum()
        nd.append(float((hits * _DISCOUNT[: len(hits)]).sum() / ideal))
        sizes.append(len(case.visible))
        shown.update(top)
    p5a, r10a, nda, sizes_a = np.array(p5), np.array(r10), np.array(nd), np.array(sizes)
    slices = {}
    for name, (lo, hi) in SLICES.items():
        m = (sizes_a >= lo) & (sizes_a <= hi)
        if m.any():
            slices[name] = {"precision@5": float(p5a[m].mean()), "recall@10": float(r10a[m].mean()),
                            "ndcg@10": float(nda[m].mean()), "cases": int(m.sum())}  # fmt: skip
    return Result(float(p5a.mean()), float(r10a.mean()), float(nda.mean()),
                  len(shown) / n_items, len(cases), slices)  # fmt: skip


def tune(ranker: Ranker, rows: list[dict], split: Split) -> tuple[dict[str, Any], list[dict]]:
    """The grid point with the best validation precision@5 (NDCG@10 breaks ties)."""
    tried = []
    ranker.tuning = True  # rankers that explain themselves may skip it here
    for params in ranker.grid:
        ranker.fit(rows, split.train, params)
        r = score(ranker, split.cases, len(rows))
        tried.append({"params": params, "precision@5": r.precision5, "ndcg@10": r.ndcg10})
    ranker.tuning = False
    best = max(tried, key=lambda t: (t["precision@5"], t["ndcg@10"]))
    return best["params"], tried


# Student's t, 97.5% quantile, for 1 to 29 degrees of freedom
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045)  # fmt: skip


def interval(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (Student's t over seeds)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), math.nan
    if len(v) > len(_T975) + 1:
        raise ValueError(f"intervals over at most {len(_T975) + 1} seeds")
    t = _T975[len(v) - 2]
    return float(v.mean()), float(t * v.std(ddof=1) / math.sqrt(len(v)))
