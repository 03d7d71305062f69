"""What a rate-limit check costs the gateway, per request: RateLimiter.admit (plan, buckets,
the two fields) with the local policy, and with the redis policy against a redis-server started
here on a free loopback port (Debian's; `make test` installs it), one client at a time.

Usage::

    .venv/bin/python bench/rate_limits.py [--checks 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from common.internal_auth import Principal  # noqa: E402
from gateway.limits.buckets import LocalBuckets  # noqa: E402
from gateway.limits.config import Limit, RateLimitSettings  # noqa: E402
from gateway.limits.limiter import LocalPolicy, RateLimiter  # noqa: E402
from gateway.limits.redis_policy import RedisBuckets, make_client  # noqa: E402
from seedos_sdk.testing import free_port  # noqa: E402

PRINCIPAL = Principal(tenant_id=uuid.uuid4(), subject="apikey:x", role="admin", tenant_slug="t")


def scope() -> dict:
    return {"path": "/api/v1/integrations", "state": {"credential": b"k" + b"x" * 32}}


async def per_check(limiter: RateLimiter, checks: int) -> list[float]:
    """Microseconds per check, in 5 runs of ``checks`` // 5."""
    runs = []
    for _ in range(5):
        n = checks // 5
        start = time.perf_counter()
        for _ in range(n):
            await limiter.admit(scope(), PRINCIPAL)
        runs.append((time.perf_counter() - start) / n * 1e6)
    return runs


async def measure(checks: int, redis_url: str | None) -> None:
    # the default policies' shape, with quotas no run here reaches
    settings = RateLimitSettings(tenant=Limit(quota=10**9), credential=Limit(quota=10**9))
    local = RateLimiter(settings, buckets=LocalPolicy(LocalBuckets()))
    runs = await per_check(local, checks)
    print(f"local: {statistics.median(runs):.2f} us per check (runs {runs})")
    if redis_url is None:
        print("redis: skipped (no redis-server)")
        return
    client = make_client(redis_url)
    for _ in range(100):
        try:
            await client.ping()
            break
        except Exception:
            await asyncio.sleep(0.05)
    shared = RateLimiter(settings, buckets=RedisBuckets(client, fallback=LocalBuckets()))
    runs = await per_check(shared, checks // 20)
    print(f"redis: {statistics.median(runs):.1f} us per check, one client (runs {runs})")
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=200_000)
    args = parser.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        asyncio.run(measure(args.checks, None))
        return
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", folder],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            asyncio.run(measure(args.checks, f"redis://127.0.0.1:{port}/0"))
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
