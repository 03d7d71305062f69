"""A small in-process limiter for the doors people knock on without credentials (sign-in, its
callback, invitation acceptance): a token bucket per client address. Each replica counts
alone. The rate limits of authenticated /api/v1/** requests are gateway/limits."""

from __future__ import annotations

import math
import time

from cachetools import LRUCache

from common.errors import SeedosError
from gateway.auth import failures


class TooManyRequests(SeedosError):
    status, code, title = 429, "too_many_requests", "Too many requests"


class AddressLimiter:
    def __init__(self, *, per_minute: int, burst: int | None = None, max_addresses: int = 100_000):
        self.rate = per_minute / 60.0
        self.burst = float(burst or max(5, per_minute // 2))
        self._buckets: LRUCache[str, tuple[float, float]] = LRUCache(maxsize=max_addresses)

    def check(self, address: str | None, *, what: str) -> None:
        """Take one token for ``address``, or raise 429 with ``Retry-After``."""
        key = address or "unknown"
        now = time.monotonic()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            wait = math.ceil((1 - tokens) / self.rate)
            failures.record("none", "rate_limited", what=what)
            raise TooManyRequests(
                f"too many {what} attempts from this address: retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        self._buckets[key] = (tokens - 1, now)
