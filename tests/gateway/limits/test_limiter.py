"""The limiter's choice of buckets: whose requests share a credential's budget."""

from __future__ import annotations

import uuid

import pytest

from common.errors import SeedosError
from common.internal_auth import Principal
from gateway.limits import limiter, redis_policy
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


class _Recording:
    """Buckets that admit everything and keep the Redis key of every bucket asked for."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    async def take(self, policies, keys):
        from gateway.limits.buckets import Verdict

        self.keys += [redis_policy._redis_key(k) for k in keys]
        return Verdict(-1, [float(p.quota) for p in policies])

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("method", ["api_key", "session", "jwt"])
async def test_every_callers_buckets_have_redis_keys(method):
    """The redis policy names each bucket from its key: every kind of caller's must work (a
    JWT caller's bucket, keyed by subject, once made every JWT request a 500 under redis)."""
    recording = _Recording()
    rate = limiter.RateLimiter(RateLimitSettings(), buckets=recording)
    who = Principal(tenant_id=TENANT, subject="jwt:supabase:é", role="viewer", auth_method=method)
    assert await _admitted(rate, who, b"k" + bytes(32))
    assert len(recording.keys) == 2 and all(k.startswith("seedos:rl:{") for k in recording.keys)


async def test_retry_after_is_the_longest_wait_of_the_short_buckets():
    """Two empty buckets: retrying when the first refills is refused by the second, so the
    answer names the later time."""
    limits = RateLimitSettings(tenant=Limit(quota=1, window_seconds=10),
                               credential=Limit(quota=1, window_seconds=3600))  # fmt: skip
    rate = limiter.build(limits, redis_url=None)
    who = Principal(tenant_id=TENANT, subject="apikey:1", role="viewer", auth_method="api_key")
    assert await _admitted(rate, who, b"k1")
    with pytest.raises(SeedosError) as refused:
        await rate.admit(_scope(b"k1"), who)
    assert int(refused.value.headers["Retry-After"]) >= 3599
