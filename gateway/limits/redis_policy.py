"""The ``redis`` policy: one budget for every replica, in Redis (``SEEDOS_RATE_LIMIT_REDIS_URL``).

One script call per request (EVALSHA, loaded once) takes a token from each of the request's
buckets atomically, on Redis's clock, so replicas whose clocks differ agree. A bucket is a hash
(``tokens``, ``at`` in ms) that expires once it would be full again. The tenant's id is the key's
hash tag, so that a tenant's buckets share a slot on a Redis Cluster too.

Redis is never a reason to refuse a request: on any error or timeout (tens of milliseconds) the
request is judged by this process's buckets (:class:`~gateway.limits.buckets.LocalBuckets`),
the fallback counted in ``seedos_rate_limit_redis_fallbacks_total`` and logged once per outage,
and Redis is asked again only after :data:`BACKOFF_SECONDS` (by one request at a time)."""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence

import structlog
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.limits.buckets import LocalBuckets, Policies, Verdict

log = structlog.get_logger(component="seedos.gateway.limits")
BACKOFF_SECONDS = 1.0
SOCKET_TIMEOUT_SECONDS = 0.05
FALLBACKS = Counter(
    "seedos_rate_limit_redis_fallbacks",
    "Requests judged by the gateway process's own buckets because Redis did not answer.",
)

# KEYS: the buckets; ARGV: quota and tokens per millisecond of each. Returns the index (1-based)
# of the first bucket without a token (0: all had one and gave it), then each bucket's tokens.
TAKE = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local levels, refused = {}, 0
for i, key in ipairs(KEYS) do
  local quota, rate = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local found = redis.call('HMGET', key, 'tokens', 'at')
  local level = quota
  if found[1] then
    level = math.min(quota, tonumber(found[1]) + math.max(0, now - tonumber(found[2])) * rate)
  end
  if level < 1 and refused == 0 then refused = i end
  levels[i] = level
end
local out = {refused}
for i, key in ipairs(KEYS) do
  if refused == 0 then
    local quota, rate = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
    levels[i] = levels[i] - 1
    redis.call('HSET', key, 'tokens', tostring(levels[i]), 'at', now)
    redis.call('PEXPIRE', key, math.ceil((quota - levels[i]) / rate) + 1000)
  end
  out[i + 1] = tostring(levels[i])
end
return out
"""


def make_client(url: str) -> Redis:
    """A client that fails fast: short timeouts and no retries (the caller falls back)."""
    return Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


class RedisBuckets:
    def __init__(self, client: Redis, *, fallback: LocalBuckets) -> None:
        self.client = client
        self.fallback = fallback
        self._script = client.register_script(TAKE)
        self._retry_at = 0.0  # while Redis is down: when to ask it again
        self._down = False

    async def take(self, policies: Policies, keys: Sequence[Hashable]) -> Verdict:
        if self._down:
            now = time.monotonic()
            if now < self._retry_at:
                return self._local(policies, keys)
            self._retry_at = now + BACKOFF_SECONDS  # this request asks; the others wait
        args: list[float] = []
        for rule in policies:
            args += (rule.quota, rule.rate / 1000)
        try:
            reply = await self._script(keys=[_redis_key(k) for k in keys], args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            if not self._down:
                self._down = True
                self._retry_at = time.monotonic() + BACKOFF_SECONDS
                log.warning("rate_limit_redis_unavailable", error=type(exc).__name__,
                            retry_seconds=BACKOFF_SECONDS)  # fmt: skip
            return self._local(policies, keys)
        if self._down:
            self._down = False
            log.info("rate_limit_redis_recovered")
        return Verdict(int(reply[0]) - 1, [float(level) for level in reply[1:]])

    def _local(self, policies: Policies, keys: Sequence[Hashable]) -> Verdict:
        FALLBACKS.inc()
        return self.fallback.take(policies, keys)

    async def close(self) -> None:
        await self.client.aclose()


def _redis_key(key: Hashable) -> str:
    """``seedos:rl:{<tenant>}:<scope>[:<credential>]`` for a bucket key (see limiter.py)."""
    scope, tenant, *credential = key  # type: ignore[misc]
    suffix = f":{credential[0].hex()}" if credential else ""
    return f"seedos:rl:{{{tenant}}}:{scope}{suffix}"
