"""The latency histogram of the rollups: sparse log-scale buckets, four per doubling.

Bucket 0 holds latencies under 1 ms; bucket k (1..LAST-1) those in [2^((k-1)/4), 2^(k/4)) ms;
bucket LAST those of 2^((LAST-1)/4) ms (131 s) or more. A percentile is read as the geometric
middle of the bucket it falls in, so it is within 9% of the true value (2^(1/8) - 1). The rollup
SQL computes the same index (``SQL_INDEX``) from the same edges, 2^(k/4) as the nearest
doubles, compared rather than logarithms taken: a logarithm in Python and one in PostgreSQL
(which first casts a double to a 15-digit numeric) disagreed at and next to the edges. Rows
store the non-empty buckets as two arrays (``latency_index``, ``latency_count``), summed over
any set of rows to read their percentiles.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

PER_DOUBLING = 4
LAST = 69
# The lower edges of buckets 1..LAST: index(ms) is how many of them are <= ms.
EDGES = tuple(2 ** (j / PER_DOUBLING) for j in range(LAST))
# The same index in SQL, of a latency in milliseconds named ``value`` (width_bucket over a sorted
# array counts the thresholds <= the operand; repr() gives each double back exactly).
SQL_INDEX = (
    "CASE WHEN value < 1 OR value = 'NaN' THEN 0 ELSE width_bucket(value::float8,"
    f" '{{{','.join(repr(edge) for edge in EDGES)}}}'::float8[]) END"
)


def index(ms: float) -> int:
    if not ms >= 1:  # under 1 ms, and NaN
        return 0
    return bisect.bisect_right(EDGES, ms)


def upper(k: int) -> float:
    """The bucket's upper bound in ms (infinite for the last)."""
    return math.inf if k >= LAST else 2 ** (k / PER_DOUBLING)


def middle(k: int) -> float:
    """The value a percentile falling in bucket k is read as, in ms."""
    if k <= 0:
        return 0.5
    if k >= LAST:
        return 2 ** ((LAST - 1) / PER_DOUBLING)
    return 2 ** ((k - 0.5) / PER_DOUBLING)


def merge(rows: Iterable[tuple[Sequence[int], Sequence[int]]]) -> dict[int, int]:
    """Sum the (latency_index, latency_count) arrays of several rows."""
    total: dict[int, int] = {}
    for indexes, counts in rows:
        for k, n in zip(indexes, counts, strict=True):
            total[k] = total.get(k, 0) + n
    return total


def quantiles(histogram: dict[int, int], qs: Sequence[float]) -> list[float | None]:
    """The percentiles ``qs`` (0..1, ascending) of a histogram, in ms; None when it is empty."""
    n = sum(histogram.values())
    if n == 0:
        return [None] * len(qs)
    out: list[float | None] = []
    ordered = sorted(histogram.items())
    seen, i = 0, 0
    for q in qs:
        rank = max(1, math.ceil(q * n))  # the rank-th smallest latency
        while seen + ordered[i][1] < rank:
            seen += ordered[i][1]
            i += 1
        out.append(middle(ordered[i][0]))
    return out


def columns(histogram: dict[int, int]) -> tuple[list[int], list[int]]:
    """A histogram as the rows' two arrays, by bucket."""
    keys = sorted(k for k, n in histogram.items() if n)
    return keys, [histogram[k] for k in keys]
