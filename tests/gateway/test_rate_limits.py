"""Rate limits at the gateway (issue 13): per credential and per tenant, by role and per tenant
override, on proxied and own /api/v1/** routes, with the IETF draft's fields and Retry-After;
the local policy (each process alone) and the redis one (two replicas sharing one budget, and
Redis stopped mid-test: the gateways keep answering on their own buckets, and say so in
/metrics). Quotas are per hour, so nothing refills while a test runs.

Cost: about 2 s to start the local rig, 3 s the redis one (redis-server and two gateways)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from common.roles import Role
from tests.gateway.limits.rig import RedisServer, gateways
from tests.support import TenantKey, add_key, make_tenant, metric_total

HOUR = 3600
LIMITS = {
    "tenant": {"quota": 8, "window_seconds": HOUR},
    "credential": {"quota": 5, "window_seconds": HOUR},
    "roles": {"viewer": {"quota": 3, "window_seconds": HOUR}},
}
ECHO = "/api/v1/marketplace/anything"
LIMITED = "urn:seedos:problem:rate_limited"


@pytest.fixture(scope="module")
async def roomy(dsn) -> TenantKey:
    """A tenant whose override lifts the tenant limit and raises its credentials' to 12."""
    return await make_tenant(dsn)


@pytest.fixture(scope="module")
def rig(dsn, roomy, tmp_path_factory):
    override = {roomy.slug: {"tenant": None, "credential": {"quota": 12, "window_seconds": HOUR}}}
    log = tmp_path_factory.mktemp("rate-limits") / "rig.log"
    with gateways(dsn, log, limits={**LIMITS, "tenants": override}) as running:
        yield running


def fields(response: httpx.Response) -> tuple[str, str]:
    return response.headers["ratelimit-policy"], response.headers["ratelimit"]


def left(response: httpx.Response) -> dict[str, tuple[int, int]]:
    """The RateLimit field read: (r, t) by policy name."""
    out = {}
    for member in response.headers["ratelimit"].split(", "):
        name, r, t = member.split(";")
        out[name.strip('"')] = (int(r.removeprefix("r=")), int(t.removeprefix("t=")))
    return out


def near(seconds: int, expected: int) -> bool:
    """A refill time as expected, less what has refilled while the test ran (a second for
    every 1/quota of the window: 450 s of an hour for a quota of 8, so under 10 s is plenty)."""
    return expected - 10 <= seconds <= expected


async def metric(client: httpx.AsyncClient, sample: str, **labels: str) -> float:
    return metric_total((await client.get("/metrics")).text, sample, **labels)


async def test_credential_then_tenant_limit_on_proxied_and_own_routes(rig, dsn):
    t = await make_tenant(dsn)
    other = await add_key(dsn, t, Role.editor)
    async with httpx.AsyncClient(base_url=rig.gateway) as client:
        limited = await metric(client, "seedos_rate_limited_total", scope="credential")
        for i in range(5):
            r = await client.get(ECHO, headers=t.headers)
            assert r.status_code == 200, r.text
            assert fields(r)[0] == '"tenant";q=8;w=3600, "credential";q=5;w=3600'
            (tenant_r, tenant_t), (credential_r, credential_t) = left(r).values()
            assert (tenant_r, credential_r) == (7 - i, 4 - i)
            # t: until the next whole token (draft 10's "more quota available")
            assert near(tenant_t, 450) and near(credential_t, 720)
        r = await client.get(ECHO, headers=t.headers)
        assert r.status_code == 429 and r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert body["type"] == LIMITED and body["code"] == "rate_limited"
        assert body["scope"] == "credential" and near(body["retry_after"], 720)
        assert r.headers["retry-after"] == str(body["retry_after"])  # one token of 5 an hour
        assert left(r)["tenant"][0] == 3 and left(r)["credential"][0] == 0
        # the gateway's own routes count too (the same tenant's bucket), with the same fields
        for i in range(3):
            r = await client.get("/api/v1/me", headers=other.headers)
            assert r.status_code == 200, r.text
            assert fields(r)[1].startswith(f'"tenant";r={2 - i};')
        r = await client.get("/api/v1/me", headers=other.headers)
        assert r.status_code == 429 and r.json()["scope"] == "tenant"
        assert r.json()["retry_after"] == int(r.headers["retry-after"])
        assert near(r.json()["retry_after"], 450)
        # a body is not read from a limited caller: refused before it is parsed
        r = await client.post("/api/v1/api-keys", headers=other.headers, content=b"{not json")
        assert r.status_code == 429 and r.json()["code"] == "rate_limited"
        assert await metric(client, "seedos_rate_limited_total", scope="credential") == limited + 1
        assert await metric(client, "seedos_rate_limited_total", scope="tenant") >= 2
        # neither health, metrics nor a refused credential is limited or carries the fields
        for path in ("/healthz", "/metrics"):
            assert "ratelimit" not in (await client.get(path, headers=t.headers)).headers
        r = await client.get(ECHO, headers={"Authorization": "Bearer sk_seedos_" + "a" * 43})
        assert r.status_code == 401 and "ratelimit" not in r.headers


async def test_role_limit_and_tenant_override(rig, dsn, roomy):
    viewer = await make_tenant(dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=rig.gateway) as client:
        answers = [await client.get(ECHO, headers=viewer.headers) for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        assert fields(answers[0])[0] == '"tenant";q=8;w=3600, "credential";q=3;w=3600'
        assert answers[3].json()["scope"] == "credential"
        # the roomy tenant: no tenant limit, 12 per credential
        for _ in range(12):
            r = await client.get(ECHO, headers=roomy.headers)
            assert r.status_code == 200, r.text
        assert fields(r)[0] == '"credential";q=12;w=3600' and list(left(r)) == ["credential"]
        assert left(r)["credential"][0] == 0 and near(left(r)["credential"][1], 300)
        assert (await client.get(ECHO, headers=roomy.headers)).status_code == 429
        # every other tenant keeps its own budget
        assert (await client.get(ECHO, headers=(await make_tenant(dsn)).headers)).is_success


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def replicas(dsn, redis_server, tmp_path_factory):
    limits = {"tenant": {"quota": 1000, "window_seconds": HOUR},
              "credential": {"quota": 6, "window_seconds": HOUR}}  # fmt: skip
    log = tmp_path_factory.mktemp("rate-limits-redis") / "rig.log"
    with gateways(dsn, log, limits=limits, replicas=2,
                  SEEDOS_RATE_LIMIT_REDIS_URL=redis_server.url) as running:  # fmt: skip
        yield running


async def test_two_replicas_share_one_budget(replicas, redis_server, dsn):
    t = await make_tenant(dsn)
    a, b = (httpx.AsyncClient(base_url=url) for url in replicas.gateways)
    async with a, b:
        for i in range(6):
            r = await (a if i % 2 else b).get(ECHO, headers=t.headers)
            assert r.status_code == 200, r.text
            remaining, reset = left(r)["credential"]
            assert remaining == 5 - i and near(reset, 600)  # the next of 6 an hour
        for client in (a, b):
            r = await client.get(ECHO, headers=t.headers)
            assert r.status_code == 429 and r.json()["scope"] == "credential"
    assert redis_server.keys(f"seedos:rl:{{{t.tenant_id}}}:*")  # both buckets live in Redis


async def test_redis_stopped_mid_test_falls_back_to_local(replicas, redis_server, dsn):
    t = await make_tenant(dsn)
    a, b = (httpx.AsyncClient(base_url=url, timeout=5) for url in replicas.gateways)
    async with a, b:
        for client in (a, b, a, b):
            assert (await client.get(ECHO, headers=t.headers)).is_success  # 2 left in Redis
        fallbacks = await metric(a, "seedos_rate_limit_redis_fallbacks_total")
        redis_server.stop()
        # each replica now judges by its own buckets, which have not been used: 6 each
        for client in (a, b):
            for _ in range(6):
                start = time.monotonic()
                r = await client.get(ECHO, headers=t.headers)
                assert r.status_code == 200, r.text
                assert time.monotonic() - start < 0.5
            r = await client.get(ECHO, headers=t.headers)
            assert r.status_code == 429 and r.json()["scope"] == "credential"
        assert await metric(a, "seedos_rate_limit_redis_fallbacks_total") >= fallbacks + 7
        # Redis back (empty: nothing was saved): asked again after a second's back-off
        redis_server.start()
        deadline = time.monotonic() + 10
        while not redis_server.keys(f"seedos:rl:{{{t.tenant_id}}}:*"):
            assert time.monotonic() < deadline, "the gateway never used Redis again"
            r = await a.get(ECHO, headers=t.headers)
            await asyncio.sleep(0.1)
        r = await a.get(ECHO, headers=t.headers)
        assert r.status_code == 200 and fields(r)[1].startswith('"tenant";r=')
    logs = replicas.supervisor.log_path.read_text()
    assert logs.count("rate_limit_redis_unavailable") == 2  # once per replica and outage
    assert "rate_limit_redis_recovered" in logs and redis_server.url not in logs


async def test_each_offline_item_costs_a_request(rig, dsn):
    """A batch is no way around the limits: each item run takes its tokens, the request paying
    for the first; when they run out the batch stops there (retry_later, Retry-After) and the
    rest wait, and the next request is refused at the door."""
    t = await make_tenant(dsn)
    iid = "6f1d3c4e-0000-4000-8000-000000000001"
    now = "2026-12-07T10:00:00+00:00"
    items = [
        {"client_id": "limits-client", "seq": n, "idempotency_key": f"k-{n}", "client_ts": now,
         "method": "POST", "path": f"/api/v1/integrations/{iid}/check"}
        for n in range(1, 9)
    ]  # fmt: skip
    async with httpx.AsyncClient(base_url=rig.gateway, timeout=30) as client:
        r = await client.post(
            "/api/v1/integrations/sync-offline", headers=t.headers, json={"items": items}
        )
        assert r.status_code == 200, r.text
        outcomes = [result["outcome"] for result in r.json()["results"]]
        assert outcomes == ["applied"] * 5 + ["retry_later"] + ["not_attempted"] * 2
        assert r.json()["results"][5]["status"] == 429
        assert near(int(r.headers["retry-after"]), 720) and r.json()["retry_after"] > 0
        r = await client.post(
            "/api/v1/integrations/sync-offline", headers=t.headers, json={"items": items[5:]}
        )
        assert r.status_code == 429 and r.json()["scope"] == "credential"
