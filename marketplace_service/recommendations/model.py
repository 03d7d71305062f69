"""The shared statistics recommendations are scored from, rebuilt at each refresh.

Everything here is the same for every caller: the catalog, the **next-install model** (below),
install counts per industry and company-size band (smoothed priors, for cold start and for the
reasons' figures), item-to-item co-installation counts across all tenants (the reasons'
figures), each connector's recent error rate, and the TF-IDF index of the catalog's
descriptions. What is particular to a caller (its profile and its installs) is read fresh per
request and combined with this in :mod:`marketplace_service.recommendations.engine`.

The next-install model is a linear model fitted in closed form, like EASE (Steck, 2019) but
trained on the order of installs rather than on whole sets: every tenant's installs, oldest
first, give one example per install, "what the tenant had before, its industry and size band
-> the connector it installed next". Ridge regression over those examples,
``W = (X'X + diag(lambda))^-1 X'Y``, with X the connectors had (and the profile and a constant)
and Y the connector installed, gives for a tenant's current installs and profile ``x`` the
estimate ``x W`` of the chance each connector is its next install; each of ``x``'s rows of
``W`` is what that connector (or the industry, or the size band) added, which is what the
reasons say. ``X'X`` and ``X'Y`` are counted straight from the install sequences (how many
examples have both a and b before them, and so on), never as a matrix of examples.
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


UNPENALISED = 1e-3  # the constant's ridge: just enough to solve with no installs at all


@dataclass(frozen=True, slots=True)
class ModelParams:
    """The next-install model's settings. The defaults are what the validation split of the
    bench's populations chose most often (``bench/recommendations.py`` tunes them on each
    population's validation split, never on its test split, and reports both)."""

    item_ridge: float = 50.0  # lambda on the rows of connectors had: more, trust pairs less
    profile_ridge: float = 100.0  # lambda on the industry and size-band rows
    prior_share: float = 0.05  # the segment prior's share of the estimate (all of it, no data)
    set_weight: float = 0.25  # the share of the order-blind EASE model of the same connectors
    set_ridge: float = 50.0  # its lambda
    description_weight: float = 3.0  # log-factor per unit of description cosine similarity
    max_items: int = 2000  # connectors modelled (the most installed; the rest rank by prior)
    min_segment: int = 5  # tenants an industry label needs to be a feature of its own


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
    services: Sequence[str] | frozenset[str]  # installed, oldest first


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
    model: NextModel | None = None
    params: ModelParams = field(default_factory=ModelParams)
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


@dataclass
class NextModel:
    """The fitted next-install model: ``weights[row]`` over the modelled connectors, one row
    per modelled connector (``row_of``), per industry label with enough tenants
    (``industry_row``), per size band (``band_row + band``) and the constant (``bias_row``)."""

    items: np.ndarray  # catalog index of each modelled connector (its column)
    row_of: np.ndarray  # catalog index -> its row and column, or -1 (not modelled)
    industry_row: dict[str, int]
    band_row: int
    bias_row: int
    weights: np.ndarray  # float32, rows x modelled connectors
    examples: int  # (had -> installed next) examples it was fitted on

    def rows(self, owned: Sequence[int], industry: str | None, band: int | None) -> list[int]:
        rows = [int(self.row_of[i]) for i in owned if self.row_of[i] >= 0]
        if industry is not None and industry in self.industry_row:
            rows.append(self.industry_row[industry])
        if band is not None:
            rows.append(self.band_row + band)
        return [*rows, self.bias_row]


def fit_next_model(
    sequences: Sequence[tuple[list[int], str | None, int | None]], n_items: int,
    params: ModelParams,
) -> NextModel:  # fmt: skip
    """Ridge regression of each install on what came before it (and the profile), from the
    tenants' install sequences (catalog indices, oldest first), in closed form."""
    counts = np.zeros(n_items)
    for seq, _, _ in sequences:
        counts[seq] += 1
    ranked = np.lexsort((np.arange(n_items), -counts))
    items = ranked[: params.max_items]
    items = np.sort(items[counts[items] > 0])
    m = len(items)
    row_of = np.full(n_items, -1, dtype=np.int64)
    row_of[items] = np.arange(m)
    labels = Counter(ind for _, ind, _ in sequences if ind is not None)
    industry_row = {
        ind: m + k
        for k, ind in enumerate(sorted(i for i, c in labels.items() if c >= params.min_segment))
    }
    band_row = m + len(industry_row)
    bias_row = band_row + len(SIZE_BANDS)
    size = bias_row + 1
    # X'X and X'Y from the sequences: an example is (the rows had before position k) ->
    # the connector at k, so rows a (at p) and b (at q) are together in n - 1 - max(p, q)
    # examples, a profile row in all n, and a precedes the target b once when p < q
    gram_keys, gram_vals, cross_keys, cross_vals, set_keys = [], [], [], [], []
    examples = 0
    for seq, industry, band in sequences:
        cols = row_of[np.asarray(seq[:MAX_INSTALLS_PAIRED], dtype=np.int64)]
        cols = cols[cols >= 0]
        n = len(cols)
        if n == 0:
            continue
        examples += n
        profile = [bias_row]
        if industry is not None and industry in industry_row:
            profile.append(industry_row[industry])
        if band is not None:
            profile.append(band_row + band)
        prof = np.array(profile, dtype=np.int64)
        pos = np.arange(n)
        together = n - 1 - np.maximum.outer(pos, pos)  # examples with both before the target
        gram_keys.append((cols[:, None] * size + cols[None, :]).ravel())
        gram_vals.append(together.ravel())
        before = (n - 1 - pos).astype(np.float64)  # examples with the connector before
        gram_keys.append((cols[:, None] * size + prof[None, :]).ravel())
        gram_vals.append(np.repeat(before, len(prof)))
        gram_keys.append((prof[:, None] * size + cols[None, :]).ravel())
        gram_vals.append(np.tile(before, len(prof)))
        gram_keys.append((prof[:, None] * size + prof[None, :]).ravel())
        gram_vals.append(np.full(len(prof) ** 2, float(n)))
        set_keys.append((cols[:, None] * m + cols[None, :]).ravel())
        earlier = pos[:, None] < pos[None, :]  # a (row) precedes the target b (column)
        cross_keys.append((cols[:, None] * m + cols[None, :])[earlier])
        cross_vals.append(np.ones(int(earlier.sum())))
        cross_keys.append((prof[:, None] * m + cols[None, :]).ravel())
        cross_vals.append(np.ones(len(prof) * n))
    gram = np.zeros(size * size)
    cross = np.zeros(size * m)
    if gram_keys:
        gram += np.bincount(np.concatenate(gram_keys), np.concatenate(gram_vals).astype(float),
                            minlength=size * size)  # fmt: skip
        cross += np.bincount(np.concatenate(cross_keys), np.concatenate(cross_vals),
                             minlength=size * m)  # fmt: skip
    gram = gram.reshape(size, size)
    ridge = np.full(size, params.profile_ridge)
    ridge[:m] = params.item_ridge
    ridge[bias_row] = UNPENALISED  # the constant is the average; the rows say how they differ
    gram[np.diag_indices(size)] += ridge
    weights = np.linalg.solve(gram, cross.reshape(size, m)) if m else np.zeros((size, 0))
    if m and params.set_weight > 0:
        # and EASE over the same connectors (order-blind: which connectors go together), its
        # share added to their rows: still one linear model, so still one weight per row
        together = np.bincount(np.concatenate(set_keys), minlength=m * m).astype(float)
        weights[:m] += params.set_weight * ease(together.reshape(m, m), params.set_ridge)
    return NextModel(items=items, row_of=row_of, industry_row=industry_row, band_row=band_row,
                     bias_row=bias_row, weights=weights.astype(np.float32),
                     examples=examples)  # fmt: skip


def ease(gram: np.ndarray, ridge: float) -> np.ndarray:
    """EASE's closed form (Steck, 2019): ``B = I - P / diag(P)``, ``P = (G + ridge I)^-1``,
    with a zero diagonal (a connector does not predict itself)."""
    g = gram.copy()
    g[np.diag_indices_from(g)] += ridge
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def build(
    *,
    items: Sequence[Item],
    tenants: Iterable[TenantRow],
    health: Iterable[tuple[str, int, int]],
    built_at: datetime,
    health_window_seconds: int,
    params: ModelParams | None = None,
) -> Snapshot:
    """The statistics from the catalog, every tenant's profile and installs (oldest first),
    and per-service (calls, errors) in the health window."""
    params = params or ModelParams()
    index_of = {item.service: i for i, item in enumerate(items)}
    n_items = len(items)
    installs = np.zeros(n_items)
    seg_n: Counter[tuple[str | None, int | None]] = Counter()
    seg_counts: dict[tuple[str | None, int | None], Counter[int]] = defaultdict(Counter)
    pairs: Counter[tuple[int, int]] = Counter()
    sequences: list[tuple[list[int], str | None, int | None]] = []
    n_tenants = 0
    for tenant in tenants:
        n_tenants += 1
        in_order = [index_of[s] for s in dict.fromkeys(tenant.services) if s in index_of]
        owned = sorted(in_order)
        industry, band = normalise_industry(tenant.industry), size_band(tenant.size)
        sequences.append((in_order, industry, band))
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
        model=fit_next_model(sequences, n_items, params),
        params=params,
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
