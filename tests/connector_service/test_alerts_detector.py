"""The detector's statistics (connector_service/alerts/detector.py), pure functions over
windows: no database, no clock."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from connector_service.alerts import detector as d
from connector_service.metrics import histogram

RULES = d.Rules()
NOW = datetime(2026, 12, 10, 14, 0, tzinfo=UTC)  # judged windows start here
SIZE = RULES.size


def w(start: datetime, calls: int = 100, errors: int = 0, p95: float | None = 100.0) -> d.Window:
    return d.Window(start, RULES.window_minutes, calls, errors, 0, p95 if calls else None)


def trailing(n: int = 72, **kw) -> list[d.Window]:
    """n windows of steady traffic just before NOW, latency a little noisy."""
    rng = random.Random(3)
    out = []
    for i in range(n, 0, -1):
        p95 = kw.get("p95", 100.0) * rng.uniform(0.9, 1.1)
        out.append(w(NOW - i * SIZE, kw.get("calls", 100), kw.get("errors", 0), p95))
    return out


def judged(n: int = RULES.judged, **kw) -> list[d.Window]:
    return [w(NOW + i * SIZE, **kw) for i in range(n)]


def decide(metric, history, now_windows, *, open_severity=None):
    bases = d.baselines(history, NOW, RULES)
    alert = d.Open(open_severity) if open_severity else None
    return d.decide(metric, now_windows, bases[metric], RULES, alert=alert)


def test_minute_rows_are_summed_into_aligned_windows_with_empty_ones_listed():
    start = datetime(2026, 12, 10, 14, 0, tzinfo=UTC)
    rows = []
    for minute in range(5):  # window one: 5 minutes of 10 calls, 1 ms .. 100 ms
        at = start + timedelta(minutes=minute)
        lat = [1.0 + i for i in range(10)] if minute < 4 else [100.0] * 10
        hist = {}
        for ms in lat:
            hist[histogram.index(ms)] = hist.get(histogram.index(ms), 0) + 1
        rows.append((at, 10, 1, 3, *histogram.columns(hist)))
    rows.append((start + timedelta(minutes=12), 4, 0, 0, [1], [4]))  # window three
    rows.append((start + timedelta(minutes=20), 99, 0, 0, [1], [99]))  # outside
    ws = d.windows(rows, start=start, end=start + timedelta(minutes=15), minutes=5)
    assert [x.start for x in ws] == [start + timedelta(minutes=m) for m in (0, 5, 10)]
    assert (ws[0].calls, ws[0].errors, ws[0].records) == (50, 5, 15)
    assert ws[0].p95_ms == pytest.approx(100, rel=0.09)  # the top 10 of 50 calls are 100 ms
    assert (ws[1].calls, ws[1].p95_ms) == (0, None)  # no rows: no calls, no latency
    assert ws[2].calls == 4
    assert d.align(start + timedelta(minutes=7, seconds=3), 5) == start + timedelta(minutes=5)


def test_latency_three_times_the_baseline_opens_after_the_persistence_not_before():
    history = trailing()
    one = judged(p95=100.0)
    one[-1] = w(one[-1].start, p95=300.0)
    assert decide(d.LATENCY, history, one) is None  # one window is not persistence
    both = judged(p95=200.0)
    decision = decide(d.LATENCY, history, both)
    assert decision is not None and decision.action == "open"
    assert decision.severity == d.WARNING  # 200 is past 100 + 50% but not three margins
    e = decision.evidence
    assert e["baseline"] == pytest.approx(100, rel=0.05) and e["baseline_kind"] == "trailing"
    assert e["observed"] == 200.0 and e["threshold"] == pytest.approx(150, rel=0.05)
    assert e["window_end"] == (NOW + RULES.judged * SIZE).isoformat()
    assert e["window_start"] == (NOW + (RULES.judged - RULES.open_after) * SIZE).isoformat()
    assert e["calls"] == [100] * RULES.open_after and e["unit"] == "ms"
    critical = decide(d.LATENCY, history, judged(p95=300.0))  # x3: past 100 + 3 x 50
    assert critical is not None and critical.severity == d.CRITICAL


def test_too_few_calls_and_small_absolute_changes_open_nothing():
    history = trailing(p95=3.0)
    assert decide(d.LATENCY, history, judged(p95=5.0)) is None  # 3 ms -> 5 ms: under 25 ms
    assert decide(d.LATENCY, trailing(), judged(calls=3, p95=5000.0)) is None  # 3 calls
    assert decide(d.ERRORS, trailing(), judged(calls=2, errors=2)) is None
    assert decide(d.LATENCY, trailing(n=6), judged(p95=5000.0)) is None  # no baseline yet


def test_error_ratio_follows_the_binomial_noise_of_the_window():
    history = trailing(calls=200, errors=1)  # 0.5%
    assert decide(d.ERRORS, history, judged(calls=200, errors=3)) is None  # 1.5%: noise
    decision = decide(d.ERRORS, history, judged(calls=200, errors=45))  # +22 points
    assert decision is not None and decision.action == "open"
    assert decision.severity == d.CRITICAL
    assert decision.evidence["baseline"] == pytest.approx(0.005)
    small = decide(d.ERRORS, history, judged(calls=12, errors=1))  # 1 of 12: one unlucky call
    assert small is None


def test_throughput_collapse_opens_and_a_quiet_install_is_not_judged():
    decision = decide(d.THROUGHPUT, trailing(calls=100), judged(calls=2))
    assert decision is not None and decision.severity == d.CRITICAL
    assert decision.evidence["baseline"] == 20.0 and decision.evidence["unit"] == "calls/min"
    assert decide(d.THROUGHPUT, trailing(calls=100), judged(calls=70)) is None  # -30%
    assert decide(d.THROUGHPUT, trailing(calls=5), judged(calls=0)) is None  # 1 a minute


def test_daily_seasonality_is_the_baseline_once_there_are_days_of_it():
    """Quiet nights, busy afternoons: at 14:00 the afternoons of earlier days are the
    reference, not the quiet morning just before."""
    history = []
    for day in range(1, 8):
        for i in range(-8, 9):
            history.append(w(NOW - timedelta(days=day) + i * SIZE, calls=500))
    history += trailing(calls=50)  # the morning: 10 a minute
    bases = d.baselines(history, NOW, RULES)
    assert bases[d.THROUGHPUT] is not None and bases[d.THROUGHPUT].kind == "seasonal"
    assert bases[d.THROUGHPUT].center == 100.0
    decision = decide(d.THROUGHPUT, history, judged(calls=50))  # a morning's traffic at 14:00
    assert decision is not None and decision.action == "open"
    # with two days only, the trailing hours are the reference, and 10 a minute is normal
    few = [x for x in history if x.start >= NOW - timedelta(days=2, hours=1)]
    assert d.baselines(few, NOW, RULES)[d.THROUGHPUT].kind == "trailing"
    assert decide(d.THROUGHPUT, few, judged(calls=50)) is None


def test_resolution_needs_a_clear_return_and_escalation_needs_critical_windows():
    history = trailing()
    # 140 ms: under the 150 ms threshold but above the 125 ms of "normal": stays open
    assert decide(d.LATENCY, history, judged(p95=140.0), open_severity=d.WARNING) is None
    assert decide(d.LATENCY, history, judged(p95=200.0), open_severity=d.WARNING) is None
    back = judged(p95=100.0)
    back[0] = w(back[0].start, p95=300.0)
    assert decide(d.LATENCY, history, back, open_severity=d.WARNING) is None  # 2 of 3 back
    resolved = decide(d.LATENCY, history, judged(p95=100.0), open_severity=d.WARNING)
    assert resolved is not None and resolved.action == "resolve"
    assert resolved.evidence["observed"] == 100.0
    worse = decide(d.LATENCY, history, judged(p95=2000.0), open_severity=d.WARNING)
    assert worse is not None and (worse.action, worse.severity) == ("escalate", d.CRITICAL)
    assert decide(d.LATENCY, history, judged(p95=2000.0), open_severity=d.CRITICAL) is None


def test_noise_alone_opens_next_to_nothing():
    """A week of 5-minute windows of lognormal latency, Poisson calls and 1% binomial errors
    around steady levels: the detector evaluated at every window opens (almost) nothing."""
    rng = random.Random(11)
    ws = []
    start = NOW - timedelta(days=8)
    for i in range(8 * 288):
        calls = max(0, round(rng.gauss(60, 60**0.5)))
        errors = sum(rng.random() < 0.01 for _ in range(calls))
        lat = sorted(rng.lognormvariate(4.5, 0.5) for _ in range(calls))
        p95 = histogram.middle(histogram.index(lat[int(0.95 * calls)])) if calls else None
        ws.append(d.Window(start + i * SIZE, 5, calls, errors, 0, p95))
    opened, alerts = 0, {}
    for j in range(288, len(ws)):
        lo = j - RULES.judged + 1
        past = ws[max(0, lo - 7 * 288 - 20) : lo]
        for metric, decision in d.assess(past, ws[lo - RULES.span + RULES.judged : j + 1],
                                         RULES, alerts).items():  # fmt: skip
            if decision.action == "open":
                opened += 1
            if decision.action == "resolve":
                del alerts[metric]
            else:
                alerts[metric] = d.Open.of(decision.severity, decision.evidence)
    assert opened <= 1


def series(days: float, level, calls=lambda i: 100) -> list[d.Window]:
    """Windows from NOW - ``days``: ``level(i)`` the p95 of window i, ``calls(i)`` its calls."""
    first = NOW - timedelta(days=days)
    return [w(first + i * SIZE, calls=calls(i), p95=level(i)) for i in range(int(days * 288))]


def run(ws: list[d.Window], first: int) -> list[tuple[int, str, str, dict]]:
    """Evaluate at the end of every window from ``first`` as the service does (the reference
    windows it reads, its open alerts): (window, metric, action, evidence) of every change."""
    per_day, trailing = 288, RULES.trailing_hours * 12
    slot = RULES.seasonal_slot_minutes // RULES.window_minutes + 1
    alerts: dict[str, d.Open] = {}
    changes = []
    for j in range(first, len(ws)):
        lo = j - RULES.judged + 1
        past = ws[max(0, lo - trailing) : lo]
        for day in range(1, RULES.seasonal_days + 1):
            if lo - day * per_day - slot >= 0:
                past += ws[lo - day * per_day - slot : lo - day * per_day + slot + RULES.judged]
        judged = ws[max(0, j - RULES.span + 1) : j + 1]
        for metric, decision in d.assess(past, judged, RULES, alerts).items():
            changes.append((j, metric, decision.action, decision.evidence))
            if decision.action == "resolve":
                del alerts[metric]
            else:
                alerts[metric] = d.Open.of(decision.severity or "", decision.evidence)
    return changes


@pytest.mark.parametrize("days", [1, 10])  # a trailing baseline; a seasonal one
def test_a_lasting_fault_stays_open_and_its_recovery_resolves_it(days):
    """p95 100 ms, then 400 ms for 30 hours from 8 hours before the end of history: the faulty
    windows never become the baseline (without the hold, the trailing median was the faulty
    value after 3 hours and the alert resolved while the fault went on), and it resolves 3
    windows into the recovery, judged against what was usual before it."""
    start, length = days * 288 - 8 * 12, 30 * 12
    rng = random.Random(days)
    ws = series(days + 30 / 24, lambda i: (400.0 if start <= i < start + length else 100.0)
                * rng.uniform(0.9, 1.1))  # fmt: skip
    ws += [w(ws[-1].end + i * SIZE, p95=100.0 * rng.uniform(0.9, 1.1)) for i in range(24)]
    changes = [c[:3] for c in run(ws, start - 24)]
    assert changes == [
        (start + RULES.open_after - 1, d.LATENCY, "open"),
        (start + length + RULES.resolve_after - 1, d.LATENCY, "resolve"),
    ]
    resolution = run(ws, start - 24)[-1][3]
    assert resolution["reason"] == d.NORMAL and resolution["baseline"] == pytest.approx(100, 0.1)


def test_a_level_kept_past_hold_days_becomes_the_new_normal():
    """A deliberate change (p95 100 -> 400 ms for good) holds its alert open for hold_days,
    then resolves it as new_normal, judged against the windows as they now are."""
    start = 4 * 288
    ws = series(4 + RULES.hold_days + 1, lambda i: 400.0 if i >= start else 100.0)
    changes = run(ws, start - 12)
    assert [c[1:3] for c in changes] == [(d.LATENCY, "open"), (d.LATENCY, "resolve")]
    (opened, *_), (resolved, *_, e) = changes
    hold_end = opened - RULES.open_after + 1 + RULES.hold_days * 288
    assert hold_end <= resolved - RULES.judged + 1 <= hold_end + 1  # the first after the hold
    assert e["reason"] == d.NEW_NORMAL and e["baseline"] == pytest.approx(400, rel=0.1)


def test_an_open_alert_resolves_as_no_data_after_enough_windows_without_a_verdict():
    history = trailing()
    quiet = RULES.no_data_windows
    assert quiet == 4 * RULES.resolve_after
    base = d.baselines(history, NOW, RULES)
    open_ = d.Open(d.CRITICAL, NOW - timedelta(hours=1), base[d.LATENCY])
    few = [w(NOW + i * SIZE, calls=RULES.min_calls - 1) for i in range(quiet)]
    for metric in (d.LATENCY, d.ERRORS):
        decision = d.decide(metric, few, base[metric], RULES, alert=open_)
        assert decision is not None and decision.action == "resolve"
        e = decision.evidence
        assert e["reason"] == d.NO_DATA and e["calls"] == [RULES.min_calls - 1] * quiet
        assert (e["window_start"], e["window_end"]) == (NOW.isoformat(), few[-1].end.isoformat())
        assert e["min_calls"] == RULES.min_calls
        # one window fewer, or one with enough calls among them: no verdict yet, stays open
        assert d.decide(metric, few[1:], base[metric], RULES, alert=open_) is None
        some = [*few[:-4], w(few[-4].start, p95=1000.0, errors=50), *few[-3:]]
        assert d.decide(metric, some, base[metric], RULES, alert=open_) is None
    # a collapse of calls is the throughput alert itself: it does not resolve for want of them
    silent = [w(NOW + i * SIZE, calls=0) for i in range(quiet)]
    assert d.decide(d.THROUGHPUT, silent, base[d.THROUGHPUT], RULES, alert=open_) is None
    assert RULES.span == quiet and d.Rules(no_data_after=20).no_data_windows == 20


def test_an_open_alert_is_read_back_from_its_evidence():
    history = trailing()
    opened = decide(d.LATENCY, history, judged(p95=200.0))
    again = d.Open.of(opened.severity, opened.evidence)
    assert again.hold_from == NOW and again.severity == d.WARNING
    assert again.baseline.center == opened.evidence["baseline"] and again.baseline.kind == d.HELD
    assert again.held(NOW + timedelta(days=RULES.hold_days) - SIZE, RULES)
    assert not again.held(NOW + timedelta(days=RULES.hold_days), RULES)
    # an escalation keeps where the hold began
    later = [w(NOW + (RULES.judged + i) * SIZE, p95=2000.0) for i in range(RULES.judged)]
    bases = d.baselines(history, later[0].start, RULES, {d.LATENCY: NOW})
    worse = d.decide(d.LATENCY, later, bases[d.LATENCY], RULES, alert=again)
    assert worse.action == "escalate" and worse.evidence["hold_from"] == NOW.isoformat()
    # an alert stored before hold_from was kept: held from its window's start
    old = {k: v for k, v in opened.evidence.items() if k not in ("hold_from", "baseline_spread")}
    assert d.Open.of(d.WARNING, old).hold_from == NOW
    assert d.Open.of(d.WARNING, old).baseline.spread == opened.evidence["spread"]
