"""The shared statistics recommendations are scored from, rebuilt at each refresh.

Everything here is the same for every caller: the catalog, install counts per industry and
company-size band (for smoothed priors), item-to-item co-installation counts across all tenants,
each connector's recent error rate, and the TF-IDF index of the catalog's descriptions. What is
particular to a caller (its profile and its installs) is read fresh per request and combined
with this in :mod:`marketplace_service.recommendations.engine`.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from marketplace_service.recommendations.text import TextIndex

# Company-size bands (employees), the "of your size" of the reasons.
SIZE_BANDS: tuple[tuple[int, int | None], ...] = (
    (1, 10), (11, 50), (51, 200), (201, 1000), (1001, 5000), (5001, None),
)  # fmt: skip
PRIOR_STRENGTH = 10.0  # pseudo-tenants pulling a segment's install rate toward its parent's
MAX_INSTALLS_PAIRED = 200  # a tenant's installs counted for co-installation (bounds the pairs)
ERROR_PRIOR_CALLS, ERROR_PRIOR_RATE = 50.0, 0.02  # a connector with few calls is presumed healthy
HEALTH_EXPONENT = 3.0  # score x ((1 - rate) / (1 - prior rate)) ** 3 above the prior rate


def size_band(size: int | None) -> int | None:
    if size is None or size <= 0:
        return None
    for band, (low, high) in enumerate(SIZE_BANDS):
        if size >= low and (high is None or size <= high):
            return band
    return None


def band_label(band: int) -> str:
    low, high = SIZE_BANDS[band]
    return f"{low:,}+ employees" if high is None else f"{low:,}-{high:,} employees"


def normalise_industry(industry: str | None) -> str | None:
    return " ".join(industry.lower().split()) or None if industry else None


@dataclass(frozen=True, slots=True)
class Item:
    slug: str
    name: str
    service: str
    category: str | None
    vendor: str | None
    description: str | None
    logo_url: str | None
    featured: bool


@dataclass(frozen=True, slots=True)
class TenantRow:
    industry: str | None
    size: int | None
    services: frozenset[str]


@dataclass(frozen=True, slots=True)
class Segment:
    """Installs among tenants of one industry and/or size band: ``counts[i]`` of ``n``."""

    n: int
    counts: dict[int, int]


@dataclass(frozen=True, slots=True)
class Prior:
    """Smoothed install rates for a profile, and the segment the reason quotes."""

    rates: np.ndarray
    label: str  # "fintech companies with 51-200 employees"
    segment: Segment


@dataclass
class Snapshot:
    items: list[Item]
    index_of: dict[str, int]  # service identifier -> item index
    n_tenants: int
    installs: np.ndarray  # tenants with each item
    segments: dict[tuple[str | None, int | None], Segment]
    co_items: list[np.ndarray]  # per item: the items co-installed with it ...
    co_counts: list[np.ndarray]  # ... and on how many tenants
    health_penalty: np.ndarray  # log-odds added for a high error rate (<= 0)
    error_calls: np.ndarray
    error_counts: np.ndarray
    error_rate: np.ndarray  # smoothed
    featured: np.ndarray  # bool
    text: TextIndex
    built_at: datetime
    health_window_seconds: int
    _priors: dict[tuple[str | None, int | None], Prior] = field(default_factory=dict)

    @property
    def global_rate(self) -> np.ndarray:
        return (self.installs + 1.0) / (self.n_tenants + 2.0)

    def prior(self, industry: str | None, band: int | None) -> Prior:
        """Install rates among similar tenants, each level smoothed toward the one above:
        all tenants -> the industry -> the industry and size band (or all -> the band)."""
        key = (industry, band)
        if (cached := self._priors.get(key)) is not None:
            return cached
        if (industry, None) not in self.segments:
            industry = None  # an industry nobody else is in says nothing
        rates, label, used = self.global_rate, "companies on the platform", self._everyone()
        if industry is not None and (seg := self.segments.get((industry, None))) is not None:
            rates, label, used = self._smooth(seg, rates), f"{industry} companies", seg
        if band is not None and (seg := self.segments.get((industry, band))) is not None:
            who = f"{industry} companies" if industry else "companies"
            label = f"{who} of your size ({band_label(band)})"
            rates, used = self._smooth(seg, rates), seg
        prior = Prior(rates=rates, label=label, segment=used)
        if len(self._priors) < 4096:  # bounded: industries are free text
            self._priors[key] = prior
        return prior

    def _everyone(self) -> Segment:
        return Segment(self.n_tenants, {i: int(c) for i, c in enumerate(self.installs) if c})

    def warm(self) -> None:
        """Compute the priors of every profile seen so far, so requests find them ready."""
        for industry, band in list(self.segments):
            self.prior(industry, band)
            self.prior(industry, None)
            self.prior(None, band)
        self.prior(None, None)

    def _smooth(self, seg: Segment, parent: np.ndarray) -> np.ndarray:
        rates = parent * PRIOR_STRENGTH
        if seg.counts:
            idx = np.fromiter(seg.counts.keys(), dtype=np.int64, count=len(seg.counts))
            rates[idx] += np.fromiter(seg.counts.values(), dtype=np.float64, count=len(idx))
        return rates / (seg.n + PRIOR_STRENGTH)


def build(
    *,
    items: Sequence[Item],
    tenants: Iterable[TenantRow],
    health: Iterable[tuple[str, int, int]],
    built_at: datetime,
    health_window_seconds: int,
) -> Snapshot:
    """The statistics from the catalog, every tenant's profile and installs, and per-service
    (calls, errors) in the health window."""
    index_of = {item.service: i for i, item in enumerate(items)}
    n_items = len(items)
    installs = np.zeros(n_items)
    seg_n: Counter[tuple[str | None, int | None]] = Counter()
    seg_counts: dict[tuple[str | None, int | None], Counter[int]] = defaultdict(Counter)
    pairs: Counter[tuple[int, int]] = Counter()
    n_tenants = 0
    for tenant in tenants:
        n_tenants += 1
        owned = sorted(index_of[s] for s in tenant.services if s in index_of)
        industry, band = normalise_industry(tenant.industry), size_band(tenant.size)
        keys = {(industry, None), (None, band), (industry, band)} - {(None, None)}
        for key in keys:
            seg_n[key] += 1
            seg_counts[key].update(owned)
        if owned:
            installs[owned] += 1
            pairs.update(itertools.combinations(owned[:MAX_INSTALLS_PAIRED], 2))
    neighbours: list[dict[int, int]] = [{} for _ in range(n_items)]
    for (a, b), count in pairs.items():
        neighbours[a][b] = count
        neighbours[b][a] = count
    co_items, co_counts = [], []
    for nb in neighbours:  # sorted by item, for searchsorted when explaining
        keys = sorted(nb)
        co_items.append(np.array(keys, dtype=np.int64))
        co_counts.append(np.array([nb[key] for key in keys], dtype=np.float64))

    calls, errors = np.zeros(n_items), np.zeros(n_items)
    for service, n_calls, n_errors in health:
        if (i := index_of.get(service)) is not None:
            calls[i], errors[i] = n_calls, min(n_errors, n_calls)
    rate = (errors + ERROR_PRIOR_RATE * ERROR_PRIOR_CALLS) / (calls + ERROR_PRIOR_CALLS)
    ratio = np.minimum((1.0 - rate) / (1.0 - ERROR_PRIOR_RATE), 1.0)
    penalty = HEALTH_EXPONENT * np.log(np.maximum(ratio, 1e-6))

    documents = [
        " ".join(filter(None, (it.name, it.vendor, it.category, it.description))) for it in items
    ]
    snapshot = Snapshot(
        items=list(items),
        index_of=index_of,
        n_tenants=n_tenants,
        installs=installs,
        segments={k: Segment(seg_n[k], dict(seg_counts[k])) for k in seg_n},
        co_items=co_items,
        co_counts=co_counts,
        health_penalty=penalty,
        error_calls=calls,
        error_counts=errors,
        error_rate=rate,
        featured=np.array([it.featured for it in items], dtype=bool),
        text=TextIndex(documents),
        built_at=built_at,
        health_window_seconds=health_window_seconds,
    )
    snapshot.warm()
    return snapshot


def logit(p: np.ndarray | float) -> np.ndarray | float:
    return np.log(p) - np.log1p(-p)


def percent(x: float) -> str:
    return f"{round(100 * x)}%" if x >= 0.01 else "under 1%"
