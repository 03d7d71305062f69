"""/metrics on every service counts requests by route template; logs never hold a key."""

from __future__ import annotations

import httpx

from common.roles import Role
from tests.support import make_tenant, metric_total


async def _count(client: httpx.AsyncClient, url: str, route: str, status: str = "200") -> float:
    text = (await client.get(url + "/metrics")).text
    return metric_total(text, "seedos_http_requests_total", route=route, status=status)


async def test_metrics_count_requests_per_service(suite, dsn):
    t = await make_tenant(dsn, role=Role.viewer)
    n = 7
    async with httpx.AsyncClient() as client:

        async def snapshot() -> dict[str, float]:
            return {
                "gw": await _count(client, suite.gateway, "/api/v1/integrations/{path}"),
                "gw_me": await _count(client, suite.gateway, "/api/v1/me"),
                "cs": await _count(client, suite.connector_service, "/api/v1/integrations"),
                "ms": await _count(
                    client, suite.marketplace_service, "/api/v1/marketplace/connectors"
                ),
                "ms_404": await _count(
                    client,
                    suite.marketplace_service,
                    "/api/v1/marketplace/connectors/{slug}",
                    "404",
                ),
            }

        before = await snapshot()
        for _ in range(n):
            await client.get(suite.gateway + "/api/v1/integrations", headers=t.headers)
            await client.get(suite.gateway + "/api/v1/marketplace/connectors", headers=t.headers)
            await client.get(suite.gateway + "/api/v1/me", headers=t.headers)
        await client.get(suite.gateway + "/api/v1/marketplace/connectors/nope", headers=t.headers)
        after = await snapshot()
        metrics = (await client.get(suite.connector_service + "/metrics")).text
    assert after["gw"] - before["gw"] == n
    assert after["gw_me"] - before["gw_me"] == n
    assert after["cs"] - before["cs"] == n
    assert after["ms"] - before["ms"] == n
    assert after["ms_404"] - before["ms_404"] == 1
    assert "seedos_http_request_duration_seconds_bucket" in metrics
    # bounded labels: ids never become label values
    assert str(t.tenant_id) not in metrics and "nope" not in metrics


async def test_logs_of_keyed_requests_do_not_contain_the_key(suite, dsn):
    t = await make_tenant(dsn)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        await client.get("/api/v1/me", headers=t.headers | {"X-Request-ID": "log-check-1"})
        await client.get(
            "/api/v1/integrations", headers=t.headers | {"X-Request-ID": "log-check-2"}
        )
        await client.get(f"/api/v1/integrations?api_key={t.key}", headers=t.headers)
        await client.get("/api/v1/me", headers={"Authorization": f"Bearer {t.key}x"})
        created = await client.post("/api/v1/api-keys", json={"name": "n"}, headers=t.headers)
    new_key = created.json()["key"]
    logs = suite.logs()
    # the requests were logged (with their request ids, on both sides of the proxy) ...
    assert logs.count("log-check-1") >= 1 and logs.count("log-check-2") >= 2
    # ... and no key, nor the internal token, made it into any line
    assert t.key not in logs and new_key not in logs
    assert t.key[len("sk_seedos_") :][:20] not in logs
    assert "eyJ" not in logs
