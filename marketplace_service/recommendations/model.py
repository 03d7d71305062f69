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
from cachetools import LRUCache

from marketplace_service.recommendations.text import TextIndex

# Company-size bands (employees), the "of your size" of the reasons.
SIZE_BANDS: tuple[tuple[int, int | None], ...] = (
    (1, 10), (11, 50), (51, 200), (201, 1000), (1001, 5000), (5001, None),
)  # fmt: skip
PRIOR_STRENGTH = 10.0  # pseudo-tenants pulling a segment's install rate toward its parent's
MAX_INSTALLS_PAIRED = 200  # a tenant's installs counted for co-installation (bounds the pairs)
ERROR_PRIOR_CALLS, ERROR_PRIOR_RATE = 50.0, 0.02  # a connector with few calls is presumed healthy
PRIOR_CACHE = 256  # segments whose priors are kept (80 KB each at 10,000 entries)
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
    verification: str | None = None  # how far the entry is known to work (catalog levels)


@dataclass(frozen=True, slots=True)
class TenantRow:
    industry: str | None
    size: int | None
    services: frozenset[str]


@dataclass(frozen=True, slots=True)
class Segment:
    """Installs among tenants of one industry and/or size band: ``counts`` at ``items``, of
    ``n`` tenants."""

    n: int
    items: np.ndarray
    counts: np.ndarray


@dataclass(frozen=True, slots=True)
class Prior:
    """Smoothed install rates for a profile, and the segment the reason quotes."""

    rates: np.ndarray
    label: str  # "fintech companies of your size (51-200 employees)"
    tenants: int


@dataclass
class Catalog:
    """What answers show of each entry, as columns (cheap to move between processes)."""

    slugs: list[str]
    names: list[str]
    categories: list[str | None]
    vendors: list[str | None]
    logo_urls: list[str | None]
    featured: np.ndarray  # bool
    verifications: list[str | None] = field(default_factory=list)


@dataclass
class Snapshot:
    """Built in a worker process and handed to the service: numpy arrays and a few flat
    columns, so that unpickling it does not stall the service's event loop."""

    catalog: Catalog
    index_of: dict[str, int]  # service identifier -> entry index
    n_tenants: int
    installs: np.ndarray  # tenants with each entry
    segments: dict[tuple[str | None, int | None], Segment]
    co_ptr: np.ndarray  # CSR by entry: co_items[co_ptr[i]:co_ptr[i + 1]] were installed with i
    co_items: np.ndarray  # ... sorted, with
    co_counts: np.ndarray  # ... on how many tenants
    health_penalty: np.ndarray  # log-odds added for a high error rate (<= 0)
    error_calls: np.ndarray
    error_counts: np.ndarray
    text: TextIndex
    built_at: datetime
    health_window_seconds: int
    # computed on demand in the service, by segment (not in the worker: a prior is an array
    # over the whole catalog, and free-text industries make thousands of segments)
    _priors: LRUCache[tuple[str | None, int | None], Prior] = field(
        default_factory=lambda: LRUCache(maxsize=PRIOR_CACHE)
    )

    def __len__(self) -> int:
        return len(self.catalog.slugs)

    @property
    def global_rate(self) -> np.ndarray:
        return (self.installs + 1.0) / (self.n_tenants + 2.0)

    def co(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.co_ptr[i], self.co_ptr[i + 1]
        return self.co_items[lo:hi], self.co_counts[lo:hi]

    def co_count(self, i: int, j: int) -> int:
        items, counts = self.co(i)
        pos = int(np.searchsorted(items, j))
        return int(counts[pos]) if pos < len(items) and items[pos] == j else 0

    def prior(self, industry: str | None, band: int | None) -> Prior:
        """Install rates among similar tenants, each level smoothed toward the one above:
        all tenants -> the industry -> the industry and size band (or all -> the band). A
        level nobody else is in says nothing and is skipped."""
        if (industry, None) not in self.segments:
            industry = None
        if (industry, band) not in self.segments:
            band = None
        key = (industry, band)  # profiles that resolve to the same segments share one
        if (cached := self._priors.get(key)) is not None:
            return cached
        rates, label, n = self.global_rate, "companies on the platform", self.n_tenants
        if industry is not None:
            seg = self.segments[(industry, None)]
            rates, label, n = self._smooth(seg, rates), f"{industry} companies", seg.n
        if band is not None:
            seg = self.segments[(industry, band)]
            who = f"{industry} companies" if industry else "companies"
            label = f"{who} of your size ({band_label(band)})"
            rates, n = self._smooth(seg, rates), seg.n
        prior = self._priors[key] = Prior(rates=rates, label=label, tenants=n)
        return prior

    def _smooth(self, seg: Segment, parent: np.ndarray) -> np.ndarray:
        rates = parent * PRIOR_STRENGTH
        rates[seg.items] += seg.counts
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
    co_ptr, co_items, co_counts = _co_installs(pairs, n_items)

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
        catalog=Catalog(
            slugs=[it.slug for it in items],
            names=[it.name for it in items],
            categories=[it.category for it in items],
            vendors=[it.vendor for it in items],
            logo_urls=[it.logo_url for it in items],
            featured=np.array([it.featured for it in items], dtype=bool),
            verifications=[it.verification for it in items],
        ),
        index_of=index_of,
        n_tenants=n_tenants,
        installs=installs,
        segments={
            key: Segment(
                seg_n[key],
                np.fromiter(seg_counts[key].keys(), dtype=np.int64, count=len(seg_counts[key])),
                np.fromiter(seg_counts[key].values(), dtype=np.float64, count=len(seg_counts[key])),
            )
            for key in seg_n
        },
        co_ptr=co_ptr,
        co_items=co_items,
        co_counts=co_counts,
        health_penalty=penalty,
        error_calls=calls,
        error_counts=errors,
        text=TextIndex(documents),
        built_at=built_at,
        health_window_seconds=health_window_seconds,
    )
    return snapshot


def _co_installs(
    pairs: Counter[tuple[int, int]], n_items: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The symmetric co-installation counts in CSR form, each row sorted by entry."""
    if not pairs:
        return np.zeros(n_items + 1, dtype=np.int64), np.zeros(0, np.int64), np.zeros(0)
    ab = np.array(list(pairs.keys()), dtype=np.int64)
    counts = np.array(list(pairs.values()), dtype=np.float64)
    rows = np.concatenate([ab[:, 0], ab[:, 1]])
    cols = np.concatenate([ab[:, 1], ab[:, 0]])
    both = np.concatenate([counts, counts])
    order = np.lexsort((cols, rows))
    rows, cols, both = rows[order], cols[order], both[order]
    ptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_items), out=ptr[1:])
    return ptr, cols, both


def logit(p: np.ndarray | float) -> np.ndarray | float:
    return np.log(p) - np.log1p(-p)


def percent(x: float) -> str:
    return f"{round(100 * x)}%" if x >= 0.01 else "under 1%"
