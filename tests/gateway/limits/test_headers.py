"""The RateLimit-Policy and RateLimit fields (draft-ietf-httpapi-ratelimit-headers, structured
fields), checked with a structured-field reading of them."""

from __future__ import annotations

import re

from gateway.limits import headers
from gateway.limits.buckets import Rule
from gateway.limits.config import Limit

POLICIES = [Rule.of("tenant", Limit(quota=1000, window_seconds=60)),
            Rule.of("credential", Limit(quota=300, window_seconds=60))]  # fmt: skip
ITEM = re.compile(r'^"([a-z]+)"((?:;[a-z]+=\d+)+)$')  # sf-string with integer parameters


def parse(value: bytes) -> dict[str, dict[str, int]]:
    out = {}
    for member in value.decode().split(", "):
        found = ITEM.match(member)
        assert found, member
        params = dict(p.split("=") for p in found.group(2).lstrip(";").split(";"))
        out[found.group(1)] = {k: int(v) for k, v in params.items()}
    return out


def test_policy_field():
    value = headers.policy_value(POLICIES)
    assert value == b'"tenant";q=1000;w=60, "credential";q=300;w=60'
    assert parse(value) == {"tenant": {"q": 1000, "w": 60}, "credential": {"q": 300, "w": 60}}


def test_state_field_remaining_and_seconds_to_more():
    """``t``: the seconds until more quota is available (draft 10 and 11): the next whole
    token of a bucket that is not full, 0 for a full one; equal to Retry-After when empty."""
    value = headers.state_value(POLICIES, [999.0, 299.0])
    assert value == b'"tenant";r=999;t=1, "credential";r=299;t=1'
    # 0.4 of a token at 1000 a minute: 0.6 more in 36 ms, 1 s rounded up
    assert parse(headers.state_value(POLICIES, [0.4, 0.0])) == {
        "tenant": {"r": 0, "t": 1}, "credential": {"r": 0, "t": 1}}  # fmt: skip
    assert parse(headers.state_value(POLICIES, [1000.0, 300.0]))["tenant"] == {"r": 1000, "t": 0}
    hourly = Rule.of("credential", Limit(quota=5, window_seconds=3600))
    assert parse(headers.state_value([hourly], [2.5]))["credential"] == {"r": 2, "t": 360}
    assert headers.more_seconds(hourly, 0.0) == headers.retry_seconds(hourly, 0.0) == 720


def test_retry_after_is_the_time_to_one_token():
    assert headers.retry_seconds(POLICIES[1], 0.0) == 1  # 5 a second
    hourly = Rule.of("credential", Limit(quota=5, window_seconds=3600))
    assert headers.retry_seconds(hourly, 0.5) == 360
    assert headers.retry_seconds(hourly, 0.0) == 720
