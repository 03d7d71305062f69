"""The ``RateLimit-Policy`` and ``RateLimit`` fields of draft-ietf-httpapi-ratelimit-headers
(revisions 08 to 11), in their structured-field form: a List of the policies that apply, each a
String naming it with its quota ``q`` and window ``w`` in seconds, and for each policy what is
left of it, ``r``, and ``t``, the seconds until more quota is made available (revision 10's
wording, for windows that slide as a token bucket's does): until the bucket holds its next
whole token, 0 when it is full. A 429's ``Retry-After`` is the refusing bucket's ``t``::

    RateLimit-Policy: "tenant";q=1000;w=60, "credential";q=300;w=60
    RateLimit: "tenant";r=999;t=1, "credential";r=299;t=1
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from gateway.limits.buckets import Rule

POLICY, STATE = b"ratelimit-policy", b"ratelimit"


def policy_value(rules: Sequence[Rule]) -> bytes:
    """``RateLimit-Policy`` for these rules."""
    return ", ".join(f'"{r.name}";q={r.quota};w={r.window_seconds}' for r in rules).encode()


def state_value(rules: Sequence[Rule], tokens: Sequence[float]) -> bytes:
    """``RateLimit`` for these rules with ``tokens`` left in each bucket: ``r`` the whole
    requests left, ``t`` the seconds until one more is (rounded up; 0 when full)."""
    return ", ".join([
        f'"{rule.name}";r={int(left) if left > 0 else 0};t={more_seconds(rule, left)}'
        for rule, left in zip(rules, tokens, strict=True)
    ]).encode()  # fmt: skip


def more_seconds(rule: Rule, tokens: float) -> int:
    """Whole seconds until the bucket holds one more whole token (0 when it is full)."""
    if tokens >= rule.quota:
        return 0
    whole = max(0.0, math.floor(tokens + 1e-9))
    return max(1, math.ceil((whole + 1 - tokens) / rule.rate - 1e-9))


def retry_seconds(rule: Rule, tokens: float) -> int:
    """Whole seconds until the bucket holds a token again (at least 1)."""
    return max(1, math.ceil((1 - tokens) / rule.rate - 1e-9))
