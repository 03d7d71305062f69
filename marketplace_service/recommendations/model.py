"""The shared statistics recommendations are scored from, rebuilt at each refresh.

Everything here is the same for every caller: the catalog, the **next-install model** (below),
install counts per industry and company-size band (smoothed priors, for cold start and for the
reasons' figures), how many tenants installed each connector after each other one (the
reasons' figures; co-installation counts are the two orders added up), each connector's recent
error rate, and the TF-IDF index of the catalog's descriptions. What is particular to a caller
(its profile and its installs) is read fresh per request and combined with this in
:mod:`marketplace_service.recommendations.engine`.

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

import functools
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


STAGES = 6  # stage rows: a tenant with 0, 1, 2, 3, 4, 5 or more modelled connectors
UNPENALISED = 1e-3  # the constant's ridge: just enough to solve with no installs at all


@dataclass(frozen=True, slots=True)
class ModelParams:
    """The next-install model's settings. ``bench/recommendations.py`` tunes them on each
    population's validation split (never its test split) and reports the shipped defaults
    beside the tuned figures (docs/recommendations-evaluation.md). The defaults were set by
    hand, not by that procedure, and stay within what validation chose in its 25 runs (5
    scenarios x 5 seeds): the item lambda 50 (chosen 12 times; 200 9 times), the profile
    lambda 100 (11 times; 10 14 times); EASE's share was chosen 0 in 14 of the 15 runs with an
    order and 0.25-0.5 on the order-free ones, so the default, 0.25, is a compromise; the
    description weight is the previous engine's (on the one population with descriptions
    validation chose 0 or 1.5: they helped little there). Stage rows were added after an
    exploratory run on seeds 1-2 of the ordered populations (+1-3% precision@5 there, nothing
    on the order-free ones); validation chose them in 20 of the 25 runs."""

    item_ridge: float = 50.0  # lambda on the rows of connectors had: more, trust pairs less
    profile_ridge: float = 100.0  # lambda on the industry and size-band rows
    prior_share: float = 0.05  # the segment prior's share of the estimate (all of it, no data)
    set_weight: float = 0.25  # the share of the order-blind EASE model of the same connectors
    set_ridge: float = 50.0  # its lambda
    description_weight: float = 3.0  # log-factor per unit of description cosine similarity
    stage_rows: bool = True  # rows for how many connectors the tenant has (its stage)
    max_items: int = 2000  # connectors modelled (the most installed; the rest rank by prior)
    min_segment: int = 5  # tenants a profile key (an industry label, a band) needs for a row


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
    band: int | None = None  # the size band the label names, if any


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
    after_ptr: np.ndarray  # CSR by entry: after_items[after_ptr[i]:after_ptr[i + 1]] were
    after_items: np.ndarray  # ... installed after i (sorted), by how many tenants
    after_counts: np.ndarray
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

    def co_count(self, i: int, j: int) -> int:
        """Tenants that installed both ``i`` and ``j``, in either order."""
        return self.after_count(i, j) + self.after_count(j, i)

    def after_count(self, i: int, j: int) -> int:
        """Tenants that installed ``j`` after ``i``."""
        lo, hi = self.after_ptr[i], self.after_ptr[i + 1]
        pos = lo + int(np.searchsorted(self.after_items[lo:hi], j))
        return int(self.after_counts[pos]) if pos < hi and self.after_items[pos] == j else 0

    @functools.cached_property
    def install_share(self) -> np.ndarray:
        return self.installs / max(self.n_tenants, 1)

    @functools.cached_property
    def everyone_part(self) -> np.ndarray:
        """The prior's share of the estimate for a tenant with no profile (everyone's rates)."""
        overall = np.clip(self.global_rate, 1e-6, 1 - 1e-6)
        return self.params.prior_share * overall / overall.sum()

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
        prior = self._priors[key] = Prior(rates=rates, label=label, tenants=n, band=band)
        return prior

    def _smooth(self, seg: Segment, parent: np.ndarray) -> np.ndarray:
        rates = parent * PRIOR_STRENGTH
        rates[seg.items] += seg.counts
        return rates / (seg.n + PRIOR_STRENGTH)


def profile_keys(industry: str | None, band: int | None) -> list[tuple]:
    """What a profile is made of, as the model's rows know it: the industry and the size band.
    (Rows for the two together were tried: the validation splits never chose them.)"""
    keys: list[tuple] = []
    if industry is not None:
        keys.append(("industry", industry))
    if band is not None:
        keys.append(("band", band))
    return keys


@dataclass
class NextModel:
    """The fitted next-install model: ``weights[row]`` over the modelled connectors, one row
    per modelled connector (``row_of``), per profile key with enough tenants (``profile_row``:
    an industry label, a size band) and the constant (``bias_row``)."""

    items: np.ndarray  # catalog index of each modelled connector (its column)
    row_of: np.ndarray  # catalog index -> its row and column, or -1 (not modelled)
    profile_row: dict[tuple, int]
    bias_row: int
    weights: np.ndarray  # float32, rows x modelled connectors
    examples: int  # (had -> installed next) examples it was fitted on
    stage_row: int | None = None  # the first of STAGES rows: 0, 1, ... STAGES - 1 or more had

    def rows(self, owned: Sequence[int], industry: str | None, band: int | None) -> list[int]:
        """The rows of a tenant: its modelled connectors, its profile's, its stage (how many
        modelled connectors it has, when the model has stage rows), the constant."""
        rows = [int(self.row_of[i]) for i in owned if self.row_of[i] >= 0]
        stage = [] if self.stage_row is None else [self.stage(len(rows))]
        return [*rows, *self.profile_rows(industry, band), *stage, self.bias_row]

    def stage(self, had: int) -> int:
        """The stage row of a tenant with ``had`` modelled connectors (stage rows only)."""
        assert self.stage_row is not None
        return self.stage_row + min(had, STAGES - 1)

    def profile_rows(self, industry: str | None, band: int | None) -> list[int]:
        keys = profile_keys(industry, band)
        return [self.profile_row[k] for k in keys if k in self.profile_row]


class _Counts:
    """A dense array of counts added to by (flat index, amount) batches, folded in every
    million or so entries: memory stays at the array and one batch, however many installs
    each tenant has (a tenant with n installs adds about n^2 entries)."""

    FOLD = 1 << 20

    def __init__(self, size: int) -> None:
        self._total = np.zeros(size)
        self._keys: list[np.ndarray] = []
        self._amounts: list[np.ndarray] = []
        self._pending = 0

    def add(self, keys: np.ndarray, amounts: np.ndarray | None = None) -> None:
        keys = keys.ravel()
        self._keys.append(keys)
        self._amounts.append(np.ones(len(keys)) if amounts is None else
                             np.asarray(amounts, dtype=np.float64).ravel())  # fmt: skip
        self._pending += len(keys)
        if self._pending >= self.FOLD:
            self._fold()

    def _fold(self) -> None:
        if self._keys:
            self._total += np.bincount(np.concatenate(self._keys), np.concatenate(self._amounts),
                                       minlength=len(self._total))  # fmt: skip
        self._keys, self._amounts, self._pending = [], [], 0

    def total(self) -> np.ndarray:
        self._fold()
        return self._total


def fit_next_model(
    sequences: Sequence[tuple[list[int], str | None, int | None]], n_items: int,
    params: ModelParams,
) -> NextModel:  # fmt: skip
    """Ridge regression of each install on what came before it (and the profile), from the
    tenants' install sequences (catalog indices, oldest first), in closed form."""
    sequences = [(list(dict.fromkeys(seq)), industry, band) for seq, industry, band in sequences]
    counts = np.zeros(n_items)
    for seq, _, _ in sequences:
        counts[seq] += 1
    ranked = np.lexsort((np.arange(n_items), -counts))
    items = ranked[: params.max_items]
    items = np.sort(items[counts[items] > 0])
    m = len(items)
    row_of = np.full(n_items, -1, dtype=np.int64)
    row_of[items] = np.arange(m)
    tenants_with: Counter[tuple] = Counter()
    for _, industry, band in sequences:
        tenants_with.update(profile_keys(industry, band))
    kept = sorted((k for k, c in tenants_with.items() if c >= params.min_segment), key=repr)
    profile_row = {key: m + k for k, key in enumerate(kept)}
    stage_row = m + len(profile_row) if params.stage_rows else None
    bias_row = m + len(profile_row) + (STAGES if params.stage_rows else 0)
    size = bias_row + 1
    model = NextModel(items=items, row_of=row_of, profile_row=profile_row, bias_row=bias_row,
                      weights=np.zeros((0, 0), np.float32), examples=0,
                      stage_row=stage_row)  # fmt: skip
    # X'X and X'Y from the sequences: an example is (the rows had before position k) ->
    # the connector at k, so rows a (at p) and b (at q) are together in n - 1 - max(p, q)
    # examples, a profile row in all n, and a precedes the target b once when p < q
    gram, cross, together = _Counts(size * size), _Counts(size * m), _Counts(m * m)
    examples = 0
    for seq, industry, band in sequences:
        cols = row_of[np.asarray(seq[:MAX_INSTALLS_PAIRED], dtype=np.int64)]
        cols = cols[cols >= 0]
        n = len(cols)
        if n == 0:
            continue
        examples += n
        prof = np.array([*model.profile_rows(industry, band), bias_row], dtype=np.int64)
        pos = np.arange(n)
        both = n - 1 - np.maximum.outer(pos, pos)  # examples with both before the target
        gram.add(cols[:, None] * size + cols[None, :], both)
        before = (n - 1 - pos).astype(np.float64)  # examples with the connector before
        gram.add(cols[:, None] * size + prof[None, :], np.repeat(before, len(prof)))
        gram.add(prof[:, None] * size + cols[None, :], np.tile(before, len(prof)))
        gram.add(prof[:, None] * size + prof[None, :], np.full(len(prof) ** 2, float(n)))
        together.add(cols[:, None] * m + cols[None, :])
        earlier = pos[:, None] < pos[None, :]  # a (row) precedes the target b (column)
        cross.add((cols[:, None] * m + cols[None, :])[earlier])
        cross.add(prof[:, None] * m + cols[None, :])
        if stage_row is not None:  # example k has the stage row of k connectors had
            stage = stage_row + np.minimum(pos, STAGES - 1)  # NextModel.stage, for every k
            gram.add(stage * size + stage)
            gram.add((cols[:, None] * size + stage[None, :])[earlier])
            gram.add((stage[None, :] * size + cols[:, None])[earlier])
            gram.add(prof[:, None] * size + stage[None, :])
            gram.add(stage[None, :] * size + prof[:, None])
            cross.add(stage * m + cols)
    gram, cross = gram.total(), cross.total()
    gram = gram.reshape(size, size)
    ridge = np.full(size, params.profile_ridge)
    ridge[:m] = params.item_ridge
    ridge[bias_row] = UNPENALISED  # the constant is the average; the rows say how they differ
    gram[np.diag_indices(size)] += ridge
    weights = np.linalg.solve(gram, cross.reshape(size, m)) if m else np.zeros((size, 0))
    if m and params.set_weight > 0:
        # and EASE over the same connectors (order-blind: which connectors go together), its
        # share added to their rows: still one linear model, so still one weight per row
        weights[:m] += params.set_weight * ease(together.total().reshape(m, m), params.set_ridge)
    model.weights, model.examples = weights.astype(np.float32), examples
    return model


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
    ordered: Counter[tuple[int, int]] = Counter()  # (earlier, later) on how many tenants
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
            ordered.update(itertools.combinations(in_order[:MAX_INSTALLS_PAIRED], 2))
    after_ptr, after_items, after_counts = _csr(ordered, n_items)

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
        after_ptr=after_ptr,
        after_items=after_items,
        after_counts=after_counts,
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


def _csr(
    pairs: Counter[tuple[int, int]], n_items: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair counts in CSR form by the first entry, each row sorted by entry."""
    if not pairs:
        return np.zeros(n_items + 1, dtype=np.int64), np.zeros(0, np.int64), np.zeros(0)
    ab = np.array(list(pairs.keys()), dtype=np.int64)
    rows, cols = ab[:, 0], ab[:, 1]
    both = np.array(list(pairs.values()), dtype=np.float64)
    order = np.lexsort((cols, rows))
    rows, cols, both = rows[order], cols[order], both[order]
    ptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_items), out=ptr[1:])
    return ptr, cols, both


def percent(x: float) -> str:
    return f"{round(100 * x)}%" if x >= 0.01 else "under 1%"
