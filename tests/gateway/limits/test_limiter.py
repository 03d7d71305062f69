"""The limiter's choice of buckets: whose requests share a credential's budget."""

from __future__ import annotations

import uuid

import pytest

from common.errors import SeedosError
from common.internal_auth import Principal
from gateway.limits import limiter
from gateway.limits.config import Limit, RateLimitSettings

TENANT = uuid.uuid4()


def _scope(credential: bytes) -> dict:
    return {"path": "/api/v1/integrations", "state": {"credential": credential}}


async def _admitted(rate: limiter.RateLimiter, principal: Principal, credential: bytes) -> bool:
    try:
        await rate.admit(_scope(credential), principal)
    except SeedosError as exc:
        assert exc.status == 429
        return False
    return True


@pytest.mark.parametrize("method", ["api_key", "session"])
async def test_each_key_or_session_has_its_own_bucket(method):
    rate = limiter.build(RateLimitSettings(credential=Limit(quota=2, window_seconds=60)),
                         redis_url=None)  # fmt: skip
    who = Principal(tenant_id=TENANT, subject="user:1", role="viewer", auth_method=method)
    assert [await _admitted(rate, who, b"k1") for _ in range(3)] == [True, True, False]
    assert await _admitted(rate, who, b"k2")  # another key of the same subject: its own


async def test_a_refreshed_jwt_keeps_its_persons_bucket():
    """A bearer JWT's credential key is the token's hash: a new token every hour must not
    bring a full bucket with it, so a JWT caller's bucket is their subject's."""
    rate = limiter.build(RateLimitSettings(credential=Limit(quota=2, window_seconds=60)),
                         redis_url=None)  # fmt: skip
    person = Principal(tenant_id=TENANT, subject="jwt:supabase:abc", role="viewer",
                       auth_method="jwt")  # fmt: skip
    tokens = [b"j" + bytes([i]) for i in range(3)]  # three tokens, one after the other
    assert [await _admitted(rate, person, t) for t in tokens] == [True, True, False]
    other = Principal(tenant_id=TENANT, subject="jwt:supabase:xyz", role="viewer",
                      auth_method="jwt")  # fmt: skip
    assert await _admitted(rate, other, b"j9")
