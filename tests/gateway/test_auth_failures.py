"""Refusals at the gateway are counted by method and reason, and audited in the tenant once a
minute per (caller, reason)."""

from __future__ import annotations

import asyncio

import httpx

from common import db
from gateway.tenants import service as tenants
from tests.people import make_person


async def test_refusals_audited(suite, dsn):
    conn = await db.connect(dsn)
    try:
        t = await tenants.get_by_slug(conn, "demo")
        p = await make_person(conn, origin=suite.gateway, tenant_id=t["id"], role="viewer")
    finally:
        await conn.close()
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
    await asyncio.sleep(0.5)
    conn = await db.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT action, payload FROM audit_logs WHERE user_id = $1 AND action = 'auth.refused'",
            f"user:{p.user_id}",
        )
    finally:
        await conn.close()
    assert sorted(r["payload"]["reason"] for r in rows) == ["csrf_refused", "role"], rows


def _count(metrics: str) -> float:
    line = 'seedos_auth_failures_total{method="session",reason="csrf_origin"} '
    found = [ln for ln in metrics.splitlines() if ln.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0
