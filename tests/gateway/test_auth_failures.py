"""Refusals at the gateway are counted by method and reason, and audited in the tenant once a
minute per (caller, reason)."""

from __future__ import annotations

import asyncio
import time

import httpx

from gateway.tenants import service as tenants
from tests.people import make_person
from tests.support import metric_total


async def test_refusals_audited(suite, conn):
    t = await tenants.get_by_slug(conn, "demo")
    p = await make_person(conn, origin=suite.gateway, tenant_id=t["id"], role="viewer")
    async with httpx.AsyncClient(base_url=suite.gateway) as c:
        before = _count((await c.get("/metrics")).text)
        for _ in range(3):
            r = await c.patch(
                "/api/v1/tenant",
                json={"size": 51},
                headers={**p.cookie, "origin": "https://evil.example"},
            )
            assert r.status_code == 403 and r.json()["code"] == "csrf_refused"
        r = await c.patch("/api/v1/tenant", json={"size": 51}, headers=p.headers)
        assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
        assert _count((await c.get("/metrics")).text) == before + 3
    # the gateway audits in the background: wait for both entries (or 5 s), then compare
    deadline = time.monotonic() + 5
    while True:
        rows = await conn.fetch(
            "SELECT action, payload FROM audit_logs WHERE user_id = $1 AND action = 'auth.refused'",
            f"user:{p.user_id}",
        )
        if len(rows) >= 2 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert sorted(r["payload"]["reason"] for r in rows) == ["csrf_refused", "role"], rows


def _count(metrics: str) -> float:
    return metric_total(
        metrics, "seedos_auth_failures_total", method="session", reason="csrf_origin"
    )
