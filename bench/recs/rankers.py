"""The baselines the field compares recommenders with, each tuned on the validation split.

- ``MostPopular``: install counts over all tenants.
- ``PopularInSegment``: install counts among tenants with the same industry label (as written,
  lowercased), or the same industry and size band; tuned: which segment, and how many
  pseudo-tenants pull a small segment toward everyone's rates.
- ``ItemKNN``: item-to-item co-occurrence. Without normalisation a candidate scores the number
  of tenants who have it together with each of the tenant's installs, summed; with it, each
  count is divided by ``(n_i ** a) * (n_j ** (1 - a))`` (cosine at ``a = 0.5``; Aiolli's
  asymmetric cosine), only each item's ``neighbours`` most similar items kept; tuned: ``a``
  and ``neighbours``.
- ``SequentialKNN``: co-occurrence with order: how many tenants installed the candidate after
  each of the tenant's installs (the "what next" item-to-item baseline).
- ``EASE`` (Steck, 2019): the closed-form linear item-item model ``B = I - P / diag(P)`` with
  ``P = (X'X + lambda I)^-1`` and a zero diagonal; tuned: ``lambda``.
- ``EASEWithProfile``: EASE with the industry label and size band as extra columns (the usual
  way to give a linear item model side information), so that a baseline sees all the profile
  the engine sees but the description.

Every baseline breaks ties (and ranks for a tenant with nothing installed) by popularity.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from marketplace_service.recommendations.engine import Profile, rank, recommend
from marketplace_service.recommendations.model import (
    SIZE_BANDS,
    Item,
    ModelParams,
    TenantRow,
    build,
    ease,
)
from marketplace_service.recommendations.model import normalise_industry as label
from marketplace_service.recommendations.model import size_band as band_of
from recs.evaluate import Case
from recs.generators import Tenant


class _Matrix:
    """The train population as a tenant x item 0/1 matrix, and popularity for ties."""

    name = "?"
    grid: list[dict[str, Any]] = [{}]

    def _base(self, rows: list[dict], train: list[Tenant]) -> np.ndarray:
        self.slugs = [r["slug"] for r in rows]
        self.index = {s: i for i, s in enumerate(self.slugs)}
        x = np.zeros((len(train), len(rows)), dtype=np.float32)
        for u, t in enumerate(train):
            for s, _ in t.events:
                x[u, self.index[s]] = 1.0
        self.counts = x.sum(axis=0).astype(np.float64)
        # ties: popularity, then catalog order (a tiny, strictly decreasing bonus)
        order = np.lexsort((np.arange(len(rows)), -self.counts))
        self.tiebreak = np.empty(len(rows))
        self.tiebreak[order] = -np.arange(len(rows)) * 1e-9
        return x

    def _top(self, scores: np.ndarray, case: Case, k: int) -> list[str]:
        scores = scores + self.tiebreak
        seen = [self.index[s] for s in case.visible if s in self.index]
        scores[seen] = -np.inf
        top = np.argpartition(-scores, k)[:k]
        return [self.slugs[j] for j in top[np.argsort(-scores[top], kind="stable")]]

    def _visible(self, case: Case) -> list[int]:
        return [self.index[s] for s in case.visible if s in self.index]


class MostPopular(_Matrix):
    name = "most popular"

    def fit(self, rows: list[dict], train: list[Tenant], params: dict[str, Any]) -> None:
        self._base(rows, train)

    def top(self, case: Case, k: int) -> list[str]:
        return self._top(self.counts.copy(), case, k)


class PopularInSegment(_Matrix):
    name = "popular in segment"
    grid = [{"segment": seg, "pseudo": m} for seg in ("industry", "industry+size")
            for m in (0.0, 2.0, 10.0, 50.0)]  # fmt: skip

    def fit(self, rows: list[dict], train: list[Tenant], params: dict[str, Any]) -> None:
        x = self._base(rows, train)
        self.params = params
        self.rate = (self.counts + 1) / (len(train) + 2)
        keys = [self._key(t.industry, t.size) for t in train]
        self.segments: dict[Any, np.ndarray] = {}
        for key in set(keys) - {None}:
            members = np.array([k == key for k in keys])
            n = members.sum()
            m = params["pseudo"]
            self.segments[key] = (x[members].sum(axis=0) + m * self.rate) / (n + m)

    def _key(self, industry: str | None, size: int) -> Any:
        name = label(industry)
        if name is None:
            return None
        return name if self.params["segment"] == "industry" else (name, band_of(size))

    def top(self, case: Case, k: int) -> list[str]:
        rates = self.segments.get(self._key(case.industry, case.size), self.rate)
        return self._top(rates.astype(np.float64).copy(), case, k)


class ItemKNN(_Matrix):
    def __init__(self, normalised: bool) -> None:
        self.normalised = normalised
        self.name = "item-kNN (normalised)" if normalised else "item-kNN (co-occurrence counts)"
        self.grid = (
            [{"alpha": a, "neighbours": n} for a in (0.3, 0.5, 0.7) for n in (10, 30, None)]
            if normalised else [{"neighbours": n} for n in (10, 30, None)]
        )  # fmt: skip

    def fit(self, rows: list[dict], train: list[Tenant], params: dict[str, Any]) -> None:
        x = self._base(rows, train)
        co = (x.T @ x).astype(np.float64)
        np.fill_diagonal(co, 0.0)
        if self.normalised:
            a, n = params["alpha"], np.maximum(self.counts, 1.0)
            co = co / np.outer(n**a, n ** (1 - a))
        if (keep := params["neighbours"]) is not None and keep < co.shape[1]:
            cut = -np.partition(-co, keep - 1, axis=1)[:, keep - 1 : keep]
            co = np.where(co >= cut, co, 0.0)
        self.sim = co

    def top(self, case: Case, k: int) -> list[str]:
        seen = self._visible(case)
        scores = self.sim[seen].sum(axis=0) if seen else np.zeros(len(self.slugs))
        return self._top(scores, case, k)


class EASE(_Matrix):
    name = "EASE"
    grid = [{"lambda": lam} for lam in (1.0, 5.0, 20.0, 50.0, 100.0, 250.0, 500.0, 1000.0)]

    def fit(self, rows: list[dict], train: list[Tenant], params: dict[str, Any]) -> None:
        x = self._base(rows, train).astype(np.float64)
        self.b = ease(x.T @ x, params["lambda"])

    def top(self, case: Case, k: int) -> list[str]:
        seen = self._visible(case)
        scores = self.b[seen].sum(axis=0) if seen else np.zeros(len(self.slugs))
        return self._top(scores, case, k)


class SequentialKNN(_Matrix):
    """Order-aware item-to-item: a candidate scores how many tenants installed it *after*
    each of the tenant's installs, divided by ``n_i ** a``; tuned: ``a``."""

    name = "item-kNN (installed after)"
    grid = [{"alpha": a} for a in (0.0, 0.5, 1.0)]

    def fit(self, rows: list[dict], train: list[Tenant], params: dict[str, Any]) -> None:
        self._base(rows, train)
        after = np.zeros((len(rows), len(rows)))
        for t in train:
            order = [self.index[s] for s, _ in t.events]
            for p, i in enumerate(order):
                after[i, order[p + 1 :]] += 1.0
        self.sim = after / np.maximum(self.counts, 1.0)[:, None] ** params["alpha"]

    def top(self, case: Case, k: int) -> list[str]:
        seen = self._visible(case)
        scores = self.sim[seen].sum(axis=0) if seen else np.zeros(len(self.slugs))
        return self._top(scores, case, k)


class EASEWithProfile(_Matrix):
    """EASE given the profile too: the industry label (as written, lowercased) and the size
    band as extra columns of X, each worth ``weight``; only the item columns are predicted.
    Tuned: ``lambda`` and ``weight``."""

    name = "EASE + profile"
    grid = [{"lambda": lam, "weight": w} for lam in (20.0, 100.0, 250.0, 500.0)
            for w in (0.5, 1.0, 2.0)]  # fmt: skip

    def fit(self, rows: list[dict], train: list[Tenant], params: dict[str, Any]) -> None:
        x = self._base(rows, train).astype(np.float64)
        self.labels = {n: k for k, n in enumerate(sorted({label(t.industry) for t in train}
                                                          - {None}))}  # fmt: skip
        self.weight = params["weight"]
        profile = np.array([self._profile(t.industry, t.size) for t in train])
        both = np.hstack([x, profile])
        self.b = ease(both.T @ both, params["lambda"])[:, : len(rows)]

    def _profile(self, industry: str | None, size: int) -> np.ndarray:
        out = np.zeros(len(self.labels) + len(SIZE_BANDS))
        if (name := label(industry)) in self.labels:
            out[self.labels[name]] = self.weight
        out[len(self.labels) + band_of(size)] = self.weight
        return out

    def top(self, case: Case, k: int) -> list[str]:
        x = np.zeros(len(self.slugs))
        x[self._visible(case)] = 1.0
        scores = np.concatenate([x, self._profile(case.industry, case.size)]) @ self.b
        return self._top(scores, case, k)


def baselines() -> list[_Matrix]:
    return [MostPopular(), PopularInSegment(), ItemKNN(normalised=False),
            ItemKNN(normalised=True), SequentialKNN(), EASE(), EASEWithProfile()]  # fmt: skip


class Engine(_Matrix):
    """The service's own recommender: its statistics built by ``model.build`` (the function the
    service's refresh worker runs) and each case ranked by ``engine.recommend`` (the function
    the route calls), with the case's profile, installs and description."""

    name = "engine"

    def __init__(self, *, descriptions: bool, grid: list[dict[str, Any]] | None = None) -> None:
        weights = (0.0, 1.5, 3.0) if descriptions else (ModelParams().description_weight,)
        self.grid = grid or [
            {"item_ridge": a, "profile_ridge": b, "set_weight": c, "stage_rows": st,
             "description_weight": d}
            for a in (20.0, 50.0, 200.0) for b in (10.0, 100.0) for c in (0.0, 0.25, 0.5)
            for st in (False, True) for d in weights
        ]  # fmt: skip
        self.tuning = False

    def fit(self, rows: list[dict], train: list[Tenant], params: dict[str, Any]) -> None:
        self._base(rows, train)
        items = [Item(slug=r["slug"], name=r["name"], service=r["service_identifier"],
                      category=r["category"], vendor=r["vendor"], description=r["description"],
                      logo_url=None, featured=bool(r["is_featured"])) for r in rows]  # fmt: skip
        tenants = [TenantRow(t.industry, t.size, tuple(s for s, _ in t.events)) for t in train]
        self.snapshot = build(items=items, tenants=tenants, health=(), built_at=datetime.now(UTC),
                              health_window_seconds=7 * 86400,
                              params=ModelParams(**params))  # fmt: skip
        self.matches: dict[str, Any] = {}

    def _match(self, description: str | None) -> Any:
        if not description:
            return None
        if description not in self.matches:
            self.matches[description] = self.snapshot.text.match(description)
        return self.matches[description]

    def top(self, case: Case, k: int) -> list[str]:
        if self.tuning:  # the same ranking, without writing the reasons
            return rank(self.snapshot, Profile(case.industry, case.size), set(case.visible),
                        k=k, match=self._match(case.description))  # fmt: skip
        items = recommend(self.snapshot, Profile(case.industry, case.size, case.description),
                          set(case.visible), k=k, match=self._match(case.description))  # fmt: skip
        return [i["slug"] for i in items]
