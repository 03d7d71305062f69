"""Token buckets (the local policy) against a clock the test moves."""

from __future__ import annotations

import time

from gateway.limits.buckets import LocalBuckets
from gateway.limits.config import Limit

TENANT = ("tenant", Limit(quota=4, window_seconds=2))  # 2 tokens a second
CREDENTIAL = ("credential", Limit(quota=2, window_seconds=10))  # 0.2 a second


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_allows_its_quota_then_refuses_until_refilled():
    clock = Clock()
    buckets = LocalBuckets(clock=clock)
    taken = [buckets.take([TENANT], ["a"]) for _ in range(5)]
    assert [v.admitted for v in taken] == [True, True, True, True, False]
    assert taken[0].tokens == [3.0] and taken[3].tokens == [0.0]
    clock.now += 0.25  # half a token
    assert not buckets.take([TENANT], ["a"]).admitted
    clock.now += 0.25
    verdict = buckets.take([TENANT], ["a"])
    assert verdict.admitted and verdict.tokens == [0.0]
    clock.now += 60  # never more than the quota
    assert buckets.take([TENANT], ["a"]).tokens == [3.0]


def test_all_or_none_across_scopes_and_keys_apart():
    clock = Clock()
    buckets = LocalBuckets(clock=clock)
    both = [TENANT, CREDENTIAL]
    assert buckets.take(both, ["t", "c1"]).admitted
    assert buckets.take(both, ["t", "c1"]).admitted
    refused = buckets.take(both, ["t", "c1"])
    assert refused.refused == 1 and refused.tokens == [2.0, 0.0]  # the tenant gave nothing
    assert buckets.take(both, ["t", "c2"]).tokens == [1.0, 1.0]  # another credential
    assert buckets.take(both, ["t", "c3"]).tokens == [0.0, 1.0]
    refused = buckets.take(both, ["t", "c4"])
    assert refused.refused == 0 and refused.tokens == [0.0, 2.0]
    assert buckets.take(both, ["other", "c4"]).admitted


def test_a_check_costs_microseconds():
    """The local policy is on every request's path: a few dict operations (measured here at
    about 2 us; the bound leaves room for a loaded machine)."""
    buckets = LocalBuckets()
    both = [TENANT, CREDENTIAL]
    big = [("tenant", Limit(quota=10**9)), ("credential", Limit(quota=10**9))]
    keys = [("t", "x"), ("c", "x", b"k" * 33)]
    buckets.take(both, keys)
    rounds = 20_000
    start = time.perf_counter()
    for _ in range(rounds):
        buckets.take(big, keys)
    per_check = (time.perf_counter() - start) / rounds
    assert per_check < 20e-6, per_check
