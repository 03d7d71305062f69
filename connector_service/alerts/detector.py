"""The anomaly detector: pure functions over an install's windows (no I/O, no clock).

An install's minute rollups are summed into aligned windows of ``Rules.window_minutes``
(:func:`windows`). Three metrics are read from each window (:func:`observe`):

- ``latency_p95``: the 95th percentile of the window's calls, in ms (high is bad);
- ``error_ratio``: failed calls over calls (high is bad);
- ``throughput``: calls per minute (low is bad: traffic collapsing).

A window with fewer than ``min_calls`` calls says nothing about latency or errors (no alert from
two calls). The *baseline* of a metric comes from reference windows before the windows judged
(:func:`baseline`): the same time of day on each of the last ``seasonal_days`` days when at least
``seasonal_min_days`` of them have data there (daily seasonality), else the last
``trailing_hours`` (a plain trailing baseline). Its centre is the median of their values, its
spread the scaled median absolute deviation (1.4826 x MAD, the standard deviation for normal
data, and unmoved by the outliers a fault puts in), floored by the sampling noise the judged
window's own number of calls implies: binomial for the error ratio, Poisson for throughput.

A window breaches when it is off the centre, on the bad side, by more than the margin
``max(z x spread, relative x centre, absolute)``: all three must be exceeded, so 3 ms -> 5 ms is
no alert however steady the latency was. It is critical past ``critical_factor`` margins.
An alert opens after ``open_after`` breaching windows in a row and resolves after
``resolve_after`` windows in a row back within ``resolve_fraction`` of the margin (hysteresis:
a value hovering at the threshold neither opens nor closes it again and again).

While an alert is open its metric's baseline is *held* (:class:`Open`): the windows from its
first breaching one on (``hold_from`` in its evidence) are kept out of the reference, so a
lasting fault does not become the baseline it is judged against; once too few reference windows
are left (a trailing baseline, after about 5 hours), the baseline the alert opened on is used.
The hold lasts ``hold_days``: a level kept that long (a deliberate change) is then judged against
the windows as they are, which it has become, and the alert resolves as ``new_normal``. An open
latency or error alert whose install has had no window with enough calls for
``no_data_windows`` windows in a row resolves as ``no_data``: nothing says it goes on.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connector_service.metrics import histogram

LATENCY, ERRORS, THROUGHPUT = "latency_p95", "error_ratio", "throughput"
METRICS = (LATENCY, ERRORS, THROUGHPUT)
WARNING, CRITICAL = "warning", "critical"
HELD = "held"  # a baseline kind: the one an open alert was judged on, kept
NORMAL, NEW_NORMAL, NO_DATA = "normal", "new_normal", "no_data"  # why an alert resolved
MAD_SCALE = 1.4826
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Limits:
    """How far off one metric must be: ``z`` spreads, a ``relative`` share of the centre and an
    ``absolute`` amount, all three; ``high``: whether high values are the bad side."""

    z: float
    relative: float
    absolute: float
    high: bool = True
    critical_factor: float = 3.0


DEFAULT_LIMITS = {
    LATENCY: Limits(z=3.0, relative=0.5, absolute=25.0),
    ERRORS: Limits(z=3.0, relative=1.0, absolute=0.05),
    THROUGHPUT: Limits(z=3.0, relative=0.5, absolute=1.0, high=False, critical_factor=1.8),
}


@dataclass(frozen=True)
class Rules:
    window_minutes: int = 5
    min_calls: int = 10  # in a window, to judge its latency or errors
    open_after: int = 3  # breaching windows in a row
    resolve_after: int = 3  # normal windows in a row
    resolve_fraction: float = 0.5  # of the margin: "back to normal" is closer than the breach
    seasonal_days: int = 7
    seasonal_min_days: int = 3
    seasonal_slot_minutes: int = 30  # either side of the judged windows' time of day
    trailing_hours: int = 6
    min_windows: int = 12  # reference windows with a value, for a baseline at all
    hold_days: int = 7  # an open alert's baseline is held this long at most
    no_data_after: int | None = None  # windows in a row with no verdict to resolve as no_data
    # (None: 4 x resolve_after)
    limits: dict[str, Limits] = field(default_factory=lambda: dict(DEFAULT_LIMITS))

    @property
    def size(self) -> timedelta:
        return timedelta(minutes=self.window_minutes)

    @property
    def judged(self) -> int:
        """How many of the latest windows one evaluation looks at."""
        return max(self.open_after, self.resolve_after)

    @property
    def no_data_windows(self) -> int:
        return self.no_data_after or 4 * self.resolve_after

    @property
    def span(self) -> int:
        """How many of the latest windows an evaluation passes to :func:`decide`: those judged,
        or as many as an open alert needs to resolve for want of data."""
        return max(self.judged, self.no_data_windows)


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    minutes: int
    calls: int
    errors: int
    records: int
    p95_ms: float | None

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.minutes)


@dataclass(frozen=True, slots=True)
class Baseline:
    center: float
    spread: float  # scaled MAD
    kind: str  # "seasonal" or "trailing"
    windows: int  # reference windows it was read from


@dataclass(frozen=True, slots=True)
class Judgement:
    level: str  # "critical", "warning", "elevated" (between normal and a breach), "normal",
    # or "unknown" (too few calls to tell)
    observed: float | None
    threshold: float | None  # a breach beyond this
    critical: float | None
    normal: float | None  # back to normal within this
    spread: float | None  # the spread used: the baseline's, or the sampling noise if larger


@dataclass(frozen=True, slots=True)
class Open:
    """An open alert as the detector needs it: its severity, where its metric's baseline is held
    from (its first breaching window) and the baseline it was judged on (the fallback)."""

    severity: str
    hold_from: datetime | None = None
    baseline: Baseline | None = None

    @classmethod
    def of(cls, severity: str, evidence: dict[str, Any]) -> Open:
        """From an alert's evidence (an alert written before ``hold_from`` was kept: its
        ``window_start``)."""
        since = evidence.get("hold_from") or evidence.get("window_start")
        base = None
        if evidence.get("baseline") is not None:
            base = Baseline(
                center=float(evidence["baseline"]),
                spread=float(evidence.get("baseline_spread", evidence.get("spread")) or 0.0),
                kind=HELD,
                windows=int(evidence.get("baseline_windows") or 0),
            )
        return cls(severity, datetime.fromisoformat(since) if since else None, base)

    def held(self, judged_start: datetime, rules: Rules) -> bool:
        """Whether the baseline is still held for windows judged from ``judged_start``."""
        return self.hold_from is not None and judged_start < self.hold_from + timedelta(
            days=rules.hold_days
        )


@dataclass(frozen=True)
class Decision:
    action: str  # "open", "escalate" or "resolve"
    severity: str | None
    evidence: dict[str, Any]


def align(moment: datetime, minutes: int) -> datetime:
    """The start of the window of ``minutes`` holding ``moment`` (windows aligned on the epoch)."""
    size = minutes * 60
    seconds = int((moment - EPOCH).total_seconds()) // size * size
    return EPOCH + timedelta(seconds=seconds)


def windows(
    rows: Iterable[tuple[datetime, int, int, int, Sequence[int], Sequence[int]]],
    *, start: datetime, end: datetime, minutes: int,
) -> list[Window]:  # fmt: skip
    """Minute rows ``(bucket, calls, errors, records, latency_index, latency_count)`` summed
    into every window of ``[start, end)`` (both aligned), a window without rows having no calls."""
    size = timedelta(minutes=minutes)
    sums: dict[datetime, list[Any]] = {}
    for bucket, calls, errors, records, indexes, counts in rows:
        if not start <= bucket < end:
            continue
        at = align(bucket, minutes)
        acc = sums.setdefault(at, [0, 0, 0, []])
        acc[0] += calls
        acc[1] += errors
        acc[2] += records
        acc[3].append((indexes, counts))
    out = []
    at = start
    while at < end:
        calls, errors, records, hists = sums.get(at, (0, 0, 0, []))
        p95 = histogram.quantiles(histogram.merge(hists), [0.95])[0] if calls else None
        out.append(Window(at, minutes, calls, errors, records, p95))
        at += size
    return out


def observe(metric: str, window: Window, rules: Rules) -> float | None:
    if metric == THROUGHPUT:
        return window.calls / window.minutes
    if window.calls < rules.min_calls:
        return None
    if metric == LATENCY:
        return window.p95_ms
    return window.errors / window.calls


def history_spans(judged_start: datetime, rules: Rules) -> list[tuple[datetime, datetime]]:
    """Where the reference windows of windows judged from ``judged_start`` lie: the trailing
    hours, and the seasonal slot on each earlier day (both before ``judged_start``)."""
    slot = timedelta(minutes=rules.seasonal_slot_minutes)
    middle = judged_start + rules.size * rules.judged / 2
    spans = [(judged_start - timedelta(hours=rules.trailing_hours), judged_start)]
    for day in range(1, rules.seasonal_days + 1):
        at = middle - timedelta(days=day)
        spans.append(
            (align(at - slot, rules.window_minutes), align(at + slot, rules.window_minutes))
        )
    return spans


def baselines(
    history: Sequence[Window], judged_start: datetime, rules: Rules,
    hold: dict[str, datetime] | None = None,
) -> dict[str, Baseline | None]:  # fmt: skip
    """Each metric's baseline for windows judged from ``judged_start``, from ``history`` (any
    windows before it; those outside :func:`history_spans` are ignored); None without enough.
    ``hold``: metrics whose windows from then on are left out (an open alert's)."""
    hold = hold or {}
    spans = history_spans(judged_start, rules)
    trailing_from = spans[0][0]
    seasonal: list[Window] = []
    days: dict[str, set[int]] = {m: set() for m in METRICS}
    trailing: list[Window] = []
    for w in history:
        if w.start >= judged_start:
            continue
        if w.start >= trailing_from:
            trailing.append(w)
        for day, (lo, hi) in enumerate(spans[1:], start=1):
            if lo <= w.start < hi:
                seasonal.append(w)
                for metric in METRICS:
                    if observe(metric, w, rules) is not None and _kept(w, metric, hold):
                        days[metric].add(day)
                break
    out: dict[str, Baseline | None] = {}
    for metric in METRICS:
        out[metric] = None
        for kind, reference in (("seasonal", seasonal), ("trailing", trailing)):
            usable = [
                w
                for w in reference
                if observe(metric, w, rules) is not None and _kept(w, metric, hold)
            ]
            if len(usable) < rules.min_windows:
                continue
            if kind == "seasonal" and len(days[metric]) < rules.seasonal_min_days:
                continue
            if metric == ERRORS:
                out[metric] = _robust_ratio(usable, kind)
            else:
                values = [observe(metric, w, rules) or 0.0 for w in usable]
                out[metric] = _robust(values, kind)
            break
    return out


def _kept(w: Window, metric: str, hold: dict[str, datetime]) -> bool:
    since = hold.get(metric)
    return since is None or w.start < since


def assess(
    past: Sequence[Window], judged: Sequence[Window], rules: Rules, alerts: dict[str, Open]
) -> dict[str, Decision]:
    """Every metric's decision for one install: ``past`` its windows before the judged ones,
    ``judged`` its latest windows (oldest first, :attr:`Rules.span` of them, fewer at the
    start of its data), ``alerts`` its open alerts by metric. What the evaluation and the bench
    both run."""
    if len(judged) < rules.judged:
        return {}
    start = judged[-rules.judged].start
    hold = {m: a.hold_from for m, a in alerts.items() if a.held(start, rules) and a.hold_from}
    bases = baselines(past, start, rules, hold)
    out = {}
    for metric in METRICS:
        decision = decide(metric, judged, bases[metric], rules, alert=alerts.get(metric))
        if decision is not None:
            out[metric] = decision
    return out


def _robust(values: list[float], kind: str) -> Baseline:
    center = statistics.median(values)
    mad = statistics.median(abs(v - center) for v in values)
    return Baseline(center=center, spread=MAD_SCALE * mad, kind=kind, windows=len(values))


def _robust_ratio(windows: Sequence[Window], kind: str, groups: int = 6) -> Baseline:
    """The error ratio's baseline: the median of the pooled ratios of ``groups`` runs of windows
    in time order (a median of means). Pooling reads a ratio of 0.3% where most windows have no
    error at all (their median would say 0); the median of the runs keeps a fault in part of the
    history from moving it. The spread is the runs' scaled MAD: what varies beyond sampling,
    which the judgement adds from the binomial distribution itself."""
    ordered = sorted(windows, key=lambda w: w.start)
    size = max(1, len(ordered) // groups)
    ratios = []
    for i in range(0, len(ordered) - size + 1, size):
        run = ordered[i : i + size]
        ratios.append(sum(w.errors for w in run) / max(1, sum(w.calls for w in run)))
    base = _robust(ratios, kind)
    return Baseline(base.center, base.spread, kind, len(ordered))


def judge(metric: str, window: Window, base: Baseline, rules: Rules) -> Judgement:
    """Where one window stands against the baseline."""
    limits = rules.limits[metric]
    observed = observe(metric, window, rules)
    if metric == THROUGHPUT and base.center * window.minutes < rules.min_calls:
        observed = None  # too little traffic expected to tell a collapse from a lull
    if observed is None:
        return Judgement("unknown", None, None, None, None, None)
    noise = _noise(metric, base.center, window, limits.z)
    margin = max(limits.z * base.spread, noise, limits.relative * base.center, limits.absolute)
    spread = max(base.spread, noise / limits.z)
    sign = 1 if limits.high else -1
    threshold = base.center + sign * margin
    critical = base.center + sign * limits.critical_factor * margin
    normal = base.center + sign * rules.resolve_fraction * margin
    off = (observed - base.center) * sign  # how far on the bad side
    if not limits.high:
        critical = max(critical, 0.0)
    if off > limits.critical_factor * margin or (not limits.high and observed <= critical):
        level = CRITICAL
    elif off > margin:
        level = WARNING
    elif off > rules.resolve_fraction * margin:
        level = "elevated"
    else:
        level = "normal"
    return Judgement(level, observed, threshold, critical, normal, spread)


def _noise(metric: str, center: float, window: Window, z: float) -> float:
    """How far above (errors) or below (throughput) ``center`` sampling alone puts a window of
    this many calls no more often than a normal variable passes ``z``: the exact binomial tail
    for errors (small windows are skewed), Poisson's standard deviation times z for calls."""
    if metric == ERRORS and window.calls:
        alpha = 0.5 * math.erfc(z / math.sqrt(2))
        k = _binomial_upper(window.calls, min(max(center, 0.0), 1.0), alpha)
        return max(k / window.calls - center, 0.0)
    if metric == THROUGHPUT:
        return z * math.sqrt(max(center, 0.0) * window.minutes) / window.minutes
    return 0.0


def _binomial_upper(n: int, p: float, alpha: float) -> int:
    """The smallest k with P(X > k) <= alpha for X ~ Binomial(n, p)."""
    if p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    pmf = (1 - p) ** n
    if pmf == 0.0:  # n p large: the normal approximation is exact enough there
        return min(n, math.ceil(n * p + 6 * math.sqrt(n * p * (1 - p))))
    cdf, k = pmf, 0
    while cdf < 1 - alpha and k < n:
        pmf *= (n - k) / (k + 1) * p / (1 - p)
        k += 1
        cdf += pmf
    return k


def decide(
    metric: str, judged: Sequence[Window], base: Baseline | None, rules: Rules,
    *, alert: Open | None = None,
) -> Decision | None:  # fmt: skip
    """What to do about one install's metric given its latest windows (oldest first, at least
    ``rules.judged``; up to :attr:`Rules.span` for an open alert to resolve for want of data),
    its baseline (with an open alert's windows left out while it is held) and the open alert:
    open, escalate, resolve or nothing (None)."""
    if len(judged) < rules.judged:
        return None
    held = False
    if alert is not None:
        # latency and errors: no verdict for long enough (throughput is judged from 0 calls)
        quiet = judged[-rules.no_data_windows :]
        if (metric != THROUGHPUT and len(quiet) == rules.no_data_windows
                and all(observe(metric, w, rules) is None for w in quiet)):  # fmt: skip
            return Decision("resolve", None, no_data_evidence(metric, quiet, rules))
        held = alert.held(judged[-rules.judged].start, rules)
        if base is None:  # too little left of the reference while held: what it opened on
            base = alert.baseline
    if base is None:
        return None
    judged = judged[-rules.judged :]
    marks = [judge(metric, w, base, rules) for w in judged]
    if alert is None:
        recent = marks[-rules.open_after :]
        if all(m.level in (WARNING, CRITICAL) for m in recent):
            severity = CRITICAL if all(m.level == CRITICAL for m in recent) else WARNING
            span = judged[-rules.open_after :]
            e = evidence(metric, base, span, recent)
            return Decision("open", severity, e | {"hold_from": e["window_start"]})
        return None
    if all(m.level == "normal" for m in marks[-rules.resolve_after :]):
        span = judged[-rules.resolve_after :]
        # past the hold, judged against the windows as they are: the level has become usual
        reason = NORMAL if held or base is alert.baseline else NEW_NORMAL
        e = evidence(metric, base, span, marks[-rules.resolve_after :])
        return Decision("resolve", None, e | {"reason": reason})
    recent = marks[-rules.open_after :]
    if alert.severity == WARNING and all(m.level == CRITICAL for m in recent):
        span = judged[-rules.open_after :]
        e = evidence(metric, base, span, recent)
        since = alert.hold_from.isoformat() if alert.hold_from else e["window_start"]
        return Decision("escalate", CRITICAL, e | {"hold_from": since})
    return None


def evidence(
    metric: str, base: Baseline, span: Sequence[Window], marks: Sequence[Judgement]
) -> dict[str, Any]:
    """What a person needs to see why: the baseline and its spread, what was observed in each
    window, the thresholds, and the metric window (first window's start, last one's end)."""
    last = marks[-1]
    return {
        "metric": metric,
        "unit": {LATENCY: "ms", ERRORS: "ratio", THROUGHPUT: "calls/min"}[metric],
        "baseline": _round(base.center),
        "baseline_spread": _round(base.spread),
        "spread": _round(last.spread if last.spread is not None else base.spread),
        "baseline_kind": base.kind,
        "baseline_windows": base.windows,
        "observed": _round(last.observed),
        "observed_windows": [_round(m.observed) for m in marks],
        "calls": [w.calls for w in span],
        "threshold": _round(last.threshold),
        "critical_threshold": _round(last.critical),
        "normal_threshold": _round(last.normal),
        "window_start": span[0].start.isoformat(),
        "window_end": span[-1].end.isoformat(),
        "window_minutes": span[0].minutes,
    }


def no_data_evidence(metric: str, span: Sequence[Window], rules: Rules) -> dict[str, Any]:
    """Why an alert resolved for want of data: its windows with too few calls to judge."""
    return {
        "metric": metric,
        "unit": {LATENCY: "ms", ERRORS: "ratio", THROUGHPUT: "calls/min"}[metric],
        "reason": NO_DATA,
        "min_calls": rules.min_calls,
        "calls": [w.calls for w in span],
        "window_start": span[0].start.isoformat(),
        "window_end": span[-1].end.isoformat(),
        "window_minutes": span[0].minutes,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
