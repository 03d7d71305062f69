"""An install's call history for the dashboard: calls, errors and latency percentiles per step.

Aggregated on read from ``connector_metrics`` (one ``latency_ms`` row per call, one ``error``
row per failed call, written by the manager's recorder), within a bounded window and number of
steps. A later version may read rollups instead; the answer's shape is the contract.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from common.errors import InvalidRequest
from connector_service.metrics import repository

MAX_WINDOW = timedelta(days=31)
MAX_POINTS = 1000
MIN_STEP = timedelta(seconds=60)
DEFAULT_WINDOW = timedelta(hours=24)


class InvalidWindow(InvalidRequest):
    code, title = "invalid_window", "The time window or step is not allowed"


def window(
    start: datetime | None, end: datetime | None, step: int | None, *, now: datetime
) -> tuple[datetime, datetime, timedelta]:
    """The window asked for, checked: ``end`` defaults to now, ``start`` to 24 hours before it,
    ``step`` to what makes about 100 points (rounded up to a whole minute)."""
    end = _aware(end) if end is not None else now
    start = _aware(start) if start is not None else end - DEFAULT_WINDOW
    if start >= end:
        raise InvalidWindow("from must be before to")
    if end - start > MAX_WINDOW:
        raise InvalidWindow(f"the window is at most {MAX_WINDOW.days} days")
    if step is None:
        minutes = max(1, -(-int((end - start).total_seconds()) // 6000))
        size = timedelta(minutes=minutes)
    else:
        size = timedelta(seconds=step)
        if size < MIN_STEP:
            raise InvalidWindow(f"step is at least {int(MIN_STEP.total_seconds())} seconds")
    if (end - start) / size > MAX_POINTS:
        raise InvalidWindow(
            f"at most {MAX_POINTS} steps: make the step larger or the window shorter"
        )
    return start, end, size


async def history(
    conn: Any, integration_id: uuid.UUID, *, start: datetime, end: datetime, step: timedelta
) -> dict[str, Any]:
    rows = {r["at"]: r for r in await repository.series(conn, integration_id, start=start,
                                                        end=end, step=step)}  # fmt: skip
    points = []
    at = start
    while at < end:  # every step, with or without calls
        row = rows.get(at)
        calls = row["calls"] if row else 0
        errors = row["errors"] if row else 0
        latency = (row["latency"] if row else None) or [None, None, None]
        points.append({
            "at": at, "calls": calls, "errors": errors,
            "error_rate": round(errors / calls, 4) if calls else None,
            "p50_ms": _ms(latency[0]), "p95_ms": _ms(latency[1]), "p99_ms": _ms(latency[2]),
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


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
