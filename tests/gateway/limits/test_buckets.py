"""Token buckets (the local policy) against a clock the test moves."""

from __future__ import annotations

from gateway.limits.buckets import LocalBuckets, Rule
from gateway.limits.config import Limit

TENANT = Rule.of("tenant", Limit(quota=4, window_seconds=2))  # 2 tokens a second
CREDENTIAL = Rule.of("credential", Limit(quota=2, window_seconds=10))  # 0.2 a second


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


def test_past_max_keys_the_oldest_bucket_is_forgotten_and_full_again():
    buckets = LocalBuckets(max_keys=2, clock=Clock())
    for key in ("a", "b", "c"):
        assert buckets.take([CREDENTIAL], [key]).tokens == [1.0]
    assert buckets.take([CREDENTIAL], ["a"]).tokens == [1.0]  # "a" was dropped for "c"
    assert buckets.take([CREDENTIAL], ["c"]).tokens == [0.0]


def test_a_bucket_in_use_is_kept_and_the_map_stays_bounded():
    """Least recently used goes first (a caller in constant use is never forgotten and handed
    a full bucket), and a request adding two keys does not grow the map past its bound."""
    buckets = LocalBuckets(max_keys=3, clock=Clock())
    assert buckets.take([CREDENTIAL], ["busy"]).tokens == [1.0]
    for other in ("x", "y", "z", "w"):
        buckets.take([CREDENTIAL], ["busy"])  # refused or not, "busy" is in use
        buckets.take([CREDENTIAL], [other])
    assert buckets.take([CREDENTIAL], ["busy"]).refused == 0  # still drained, not forgotten
    many = LocalBuckets(max_keys=100, clock=Clock())
    for i in range(1000):
        many.take([TENANT, CREDENTIAL], [f"t{i}", f"c{i}"])
    assert len(many._buckets) <= 100
