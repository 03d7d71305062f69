"""Token buckets in this process: the ``local`` policy, and the fallback of the ``redis`` one.

A check takes one token from each bucket a request falls under (the tenant's, the
credential's), all or none: a request refused by one bucket takes nothing from the others.
A bucket not seen yet (or evicted, past ``max_keys``) is full."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from cachetools import LRUCache

from gateway.limits.config import Limit

Policies = Sequence[tuple[str, Limit]]  # (scope name, limit) in the order they are checked


@dataclass(slots=True)
class Verdict:
    refused: int  # the index of the first policy without a token, -1 when admitted
    tokens: list[float]  # what is left in each bucket (after taking, when admitted)

    @property
    def admitted(self) -> bool:
        return self.refused < 0


class LocalBuckets:
    def __init__(
        self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._buckets: LRUCache[Hashable, tuple[float, float]] = LRUCache(maxsize=max_keys)
        self._clock = clock

    def take(self, policies: Policies, keys: Sequence[Hashable]) -> Verdict:
        """One token from the bucket of each ``keys[i]`` under ``policies[i]``, or none."""
        now = self._clock()
        buckets = self._buckets
        levels: list[float] = []
        refused = -1
        for i, key in enumerate(keys):
            limit = policies[i][1]
            found = buckets.get(key)
            if found is None:
                level = float(limit.quota)
            else:
                level = min(float(limit.quota), found[0] + (now - found[1]) * limit.rate)
            if level < 1 and refused < 0:
                refused = i
            levels.append(level)
        if refused < 0:
            for i, key in enumerate(keys):
                levels[i] -= 1
                buckets[key] = (levels[i], now)
        return Verdict(refused, levels)
