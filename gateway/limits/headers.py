"""The ``RateLimit-Policy`` and ``RateLimit`` fields of draft-ietf-httpapi-ratelimit-headers
(revisions 08 to 11), in their structured-field form: a List of the policies that apply, each a
String naming it with its quota ``q`` and window ``w`` in seconds, and for each policy what is
left of it, ``r``, and the seconds ``t`` until it is whole again::

    RateLimit-Policy: "tenant";q=1000;w=60, "credential";q=300;w=60
    RateLimit: "tenant";r=999;t=1, "credential";r=299;t=1
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from gateway.limits.config import Limit

POLICY, STATE = b"ratelimit-policy", b"ratelimit"


def policy_value(policies: Sequence[tuple[str, Limit]]) -> bytes:
    """``RateLimit-Policy`` for these (name, limit) pairs."""
    return ", ".join(
        f'"{name}";q={limit.quota};w={limit.window_seconds}' for name, limit in policies
    ).encode()


def state_value(policies: Sequence[tuple[str, Limit]], tokens: Sequence[float]) -> bytes:
    """``RateLimit`` for these policies with ``tokens`` left in each bucket: ``r`` the whole
    requests left, ``t`` the seconds until the bucket is full again (rounded up)."""
    return ", ".join(
        f'"{name}";r={max(0, int(left))};t={reset_seconds(limit, left)}'
        for (name, limit), left in zip(policies, tokens, strict=True)
    ).encode()


def reset_seconds(limit: Limit, tokens: float) -> int:
    return max(0, math.ceil((limit.quota - tokens) / limit.rate - 1e-9))


def retry_seconds(limit: Limit, tokens: float) -> int:
    """Whole seconds until the bucket holds a token again (at least 1)."""
    return max(1, math.ceil((1 - tokens) / limit.rate - 1e-9))
