"""An install's call history and a tenant's summary, from the rollups and the newest raw rows.

The history: calls, errors and latency percentiles per step, every step of the window listed.
A step is a whole number of minutes; the window starts on a minute (on the hour when the step
is whole hours: ``from`` is rounded down), so each rollup row falls in exactly one step. Whole
hours are read from the hour rollups, the minutes around them from the minute rollups (kept 30
days: steps under an hour reach back that far), and what the rollup job has not folded yet (its
``rolled_until``) from the raw rows, so the history is current to the second. A rollup row counts
in the step its minute or hour starts in. Percentiles come from the log-scale histogram
(histogram.py): within 9% of the exact value.

The summary: per install of the tenant, calls, errors, error rate, latency percentiles and
records over a window (default the last 24 hours), and the tenant's totals.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from common.errors import InvalidRequest
from connector_service.metrics import histogram, repository
from connector_service.metrics.repository import Ranges

MAX_POINTS = 1000
MIN_STEP = timedelta(seconds=60)
HOUR = timedelta(hours=1)
DEFAULT_WINDOW = timedelta(hours=24)
AHEAD = timedelta(days=1)
MAX_STEP_SECONDS = 366 * 86400
QUANTILES = (0.5, 0.95, 0.99)
_NONE = (None, None, None)
_NO_CALLS = (0, 0, (), ())
# What a percentile falling in each bucket reads as, in ms, rounded as answered.
_MIDDLE_MS = tuple(round(histogram.middle(k), 2) for k in range(histogram.LAST + 1))


class InvalidWindow(InvalidRequest):
    code, title = "invalid_window", "The time window or step is not allowed"


@dataclass(frozen=True)
class Kept:
    """How far back each level of the history reaches (the retention settings)."""

    minutes: timedelta
    hours: timedelta


def window(
    start: datetime | None, end: datetime | None, step: int | None, *, now: datetime, kept: Kept
) -> tuple[datetime, datetime, timedelta]:
    """The window asked for, checked: ``end`` defaults to now, ``start`` to 24 hours before it,
    ``step`` to what makes about 100 points (whole minutes, whole hours past an hour); ``start``
    rounded down to the minute, or to the hour for steps of whole hours."""
    start, end = _bounds(start, end, now=now, kept=kept)
    if step is None:
        minutes = max(1, -(-int((end - start).total_seconds()) // 6000))
        size = timedelta(minutes=minutes if minutes <= 60 else -(-minutes // 60) * 60)
    else:
        size = timedelta(seconds=step)
        if size < MIN_STEP or size % MIN_STEP:
            raise InvalidWindow(f"step is a whole number of minutes, at least {MIN_STEP.seconds}"
                                " seconds")  # fmt: skip
    whole_hours = size % HOUR == timedelta(0)
    start = _hour(start) if whole_hours else _minute(start)
    if not whole_hours and start < now - kept.minutes:
        raise InvalidWindow(f"steps under an hour (or not whole hours) reach back at most"
                            f" {kept.minutes.days} days: make the step whole hours")  # fmt: skip
    if (end - start) / size > MAX_POINTS:
        raise InvalidWindow(
            f"at most {MAX_POINTS} steps: make the step larger or the window shorter"
        )
    return start, end, size


def summary_window(
    start: datetime | None, end: datetime | None, *, now: datetime, kept: Kept
) -> tuple[datetime, datetime]:
    """A summary's window: as a history's, rounded down to the minute (to the hour when it
    reaches back past the minute rollups)."""
    start, end = _bounds(start, end, now=now, kept=kept)
    return (_hour(start) if start < now - kept.minutes else _minute(start)), end


def _bounds(
    start: datetime | None, end: datetime | None, *, now: datetime, kept: Kept
) -> tuple[datetime, datetime]:
    end = _aware(end) if end is not None else now
    start = _aware(start) if start is not None else end - DEFAULT_WINDOW
    if start >= end:
        raise InvalidWindow("from must be before to")
    if end - start > kept.hours:
        raise InvalidWindow(f"the window is at most {kept.hours.days} days")
    # Nothing is kept outside these, and dates near the calendar's ends would overflow the steps.
    if end > now + AHEAD or start < now - kept.hours - AHEAD:
        raise InvalidWindow(f"the window lies within the last {kept.hours.days} days"
                            " (and at most a day ahead)")  # fmt: skip
    return start, end


def ranges(start: datetime, end: datetime, rolled_until: datetime | None, *, hours: bool) -> Ranges:
    """Where each part of [start, end) is read from: rollups before ``rolled_until`` (whole
    hours from the hour rollups when ``hours``), the raw rows after."""
    # A rollup row holds its whole minute: the minute ``end`` falls in is read from raw rows,
    # or calls after ``end`` would be counted.
    cut = min(max(rolled_until or start, start), _minute(end))
    first, last = _hour(start - timedelta(microseconds=1)) + HOUR, _hour(cut)  # whole hours
    if not hours or first >= last:
        return Ranges((start, start), (start, cut), (cut, cut), (cut, end))
    return Ranges((first, last), (start, first), (last, cut), (cut, end))


async def history(
    conn: Any, integration_id: uuid.UUID, *, start: datetime, end: datetime, step: timedelta
) -> dict[str, Any]:
    until = await repository.rolled_until(conn)
    where = ranges(start, end, until, hours=step % HOUR == timedelta(0))
    steps = _fold(await repository.series(conn, integration_id, where, start=start, step=step))
    points = []
    at = start
    while at < end:  # every step, with or without calls
        calls, errors, indexes, counts = steps.get(at) or _NO_CALLS
        p50, p95, p99 = _quantiles(indexes, counts) if counts else _NONE
        points.append({
            "at": at, "calls": calls, "errors": errors,
            "error_rate": round(errors / calls, 4) if calls else None,
            "p50_ms": p50, "p95_ms": p95, "p99_ms": p99,
        })  # fmt: skip
        at += step
    calls = sum(p["calls"] for p in points)
    errors = sum(p["errors"] for p in points)
    return {
        "from": start,
        "to": end,
        "step": int(step.total_seconds()),
        "points": points,
        "totals": {
            "calls": calls,
            "errors": errors,
            "error_rate": round(errors / calls, 4) if calls else None,
        },
    }


async def summary(
    conn: Any, tenant_id: uuid.UUID, *, start: datetime, end: datetime
) -> dict[str, Any]:
    until = await repository.rolled_until(conn)
    found = {
        r["key"]: r
        for r in await repository.by_install(conn, tenant_id, ranges(start, end, until, hours=True))
    }
    items = []
    for install in await repository.installs(conn, tenant_id):
        row = found.get(install["id"])
        items.append({
            "id": install["id"], "name": install["connector_name"],
            "service_name": install["service_name"], **_figures(row),
        })  # fmt: skip
    merged = histogram.merge(_histogram_columns(r) for r in found.values())
    totals = {
        "calls": sum(r["calls"] for r in found.values()),
        "errors": sum(r["errors"] for r in found.values()),
        "records": sum(r["records"] for r in found.values()),
    }
    p50, p95, p99 = (_ms(q) for q in histogram.quantiles(merged, QUANTILES))
    return {
        "from": start,
        "to": end,
        "items": items,
        "totals": {
            **totals,
            "error_rate": _rate(totals["errors"], totals["calls"]),
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
        },
    }


def _fold(rows: list[Any]) -> dict[datetime, tuple[int, int, Any, Any]]:
    """Calls, errors and the histogram's two arrays per step, from rows ordered by step: most
    steps have one row (an hour at 1-hour steps), the others are added up."""
    steps: dict[datetime, tuple[int, int, Any, Any]] = {}
    merged: dict[datetime, dict[int, int]] = {}
    for row in rows:
        key, calls, errors = row["key"], row["calls"], row["errors"]
        indexes, counts = row["latency_index"], row["latency_count"]
        if key in steps:
            before = steps[key]
            found = merged.get(key) or histogram.merge([(before[2], before[3])])
            merged[key] = histogram.merge([(found.keys(), found.values()), (indexes, counts)])
            indexes, counts = histogram.columns(merged[key])
            calls, errors = calls + before[0], errors + before[1]
        steps[key] = (calls, errors, indexes, counts)
    return steps


def _quantiles(indexes: Any, counts: Any) -> list[float | None]:
    """``QUANTILES`` of a histogram given as its arrays sorted by bucket (as the rows hold
    them), rounded; the same values as ``histogram.quantiles``, without building a dict."""
    total = sum(counts)
    if not total:
        return list(_NONE)
    out: list[float | None] = []
    seen, i = counts[0], 0
    for q in QUANTILES:
        rank = max(1, math.ceil(q * total))
        while seen < rank:
            i += 1
            seen += counts[i]
        out.append(_MIDDLE_MS[indexes[i]])
    return out


def _figures(row: Any) -> dict[str, Any]:
    calls, errors = (row["calls"], row["errors"]) if row else (0, 0)
    p50, p95, p99 = _percentiles(row)
    return {
        "calls": calls, "errors": errors, "error_rate": _rate(errors, calls),
        "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "records": row["records"] if row else 0,
    }  # fmt: skip


def _histogram_columns(row: Any) -> tuple[list[int], list[int]]:
    return row["latency_index"] or [], row["latency_count"] or []


def _percentiles(row: Any) -> list[float | None]:
    return _quantiles(*_histogram_columns(row)) if row is not None else [None, None, None]


def _rate(errors: int, calls: int) -> float | None:
    return round(errors / calls, 4) if calls else None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _aware(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
