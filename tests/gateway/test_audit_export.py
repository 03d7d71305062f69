"""GET /api/v1/audit-logs/export.csv through the real gateway: the list's filters, every
matching row of the caller's tenant and no other's, cells a spreadsheet will not run, admins
only; and the stream reading page by page up to its bound."""

from __future__ import annotations

import csv
import io
import json

import asyncpg
import httpx
import pytest

from common import audit
from common.db import Database
from common.roles import Role
from gateway.audit_logs import export, service
from tests.support import TenantKey, add_key, connected, make_tenant

PROBLEM = "application/problem+json"
HEADER = ["seq", "created_at", "actor", "action", "target", "details", "request_id",
          "prev_hash", "hash"]  # fmt: skip


async def download(client: httpx.AsyncClient, t: TenantKey, **params) -> tuple[httpx.Response,
                                                                               list[dict]]:  # fmt: skip
    r = await client.get("/api/v1/audit-logs/export.csv", params=params, headers=t.headers)
    assert r.status_code == 200, r.text
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8"), newline="")))
    assert rows[0] == HEADER
    return r, [dict(zip(HEADER, row, strict=True)) for row in rows[1:]]


async def listed(client: httpx.AsyncClient, t: TenantKey, **params) -> list[dict]:
    r = await client.get("/api/v1/audit-logs", params={**params, "limit": 200}, headers=t.headers)
    assert r.status_code == 200 and r.json()["next_cursor"] is None, r.text
    return r.json()["items"]


async def test_the_export_holds_what_the_list_holds_for_the_same_filters(suite, dsn):
    a, b = await make_tenant(dsn), await make_tenant(dsn)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        keys = [
            (await client.post("/api/v1/api-keys", json={"name": f"k{i}"}, headers=a.headers))
            for i in range(3)
        ]
        assert all(k.status_code == 201 for k in keys)
        await client.delete(f"/api/v1/api-keys/{keys[0].json()['id']}", headers=a.headers)
        before = await listed(client, a)
        r, rows = await download(client, a)
        assert r.headers["content-type"] == "text/csv; charset=utf-8"
        disposition = r.headers["content-disposition"]
        assert disposition.startswith(f'attachment; filename="audit-log-{a.slug}-')
        assert disposition.endswith('.csv"')
        assert r.headers["x-export-truncated"] == "false"
        # every entry, newest first, the export's own entry on top
        assert rows[0]["action"] == "audit_log.exported"
        assert json.loads(rows[0]["details"]) == {"filters": {}, "format": "csv",
                                                  "truncated": False}  # fmt: skip
        assert rows[0]["actor"] == f"apikey:{a.key_id}"
        assert [int(x["seq"]) for x in rows[1:]] == [i["seq"] for i in before]
        for row, item in zip(rows[1:], before, strict=True):
            assert (row["action"], row["target"], row["hash"], row["prev_hash"]) == (
                item["action"], item["target"], item["hash"], item["prev_hash"] or "",
            )  # fmt: skip
            assert json.loads(row["details"]) == item["payload"]
            assert row["created_at"] == item["created_at"].replace("Z", "+00:00")

        _, rows = await download(client, a, action="api_key.revoked")
        assert [x["target"] for x in rows] == [f"api_key:{keys[0].json()['id']}"]
        _, rows = await download(client, a, action_prefix="api_key.", actor=f"apikey:{a.key_id}")
        assert [x["action"] for x in rows] == ["api_key.revoked"] + ["api_key.created"] * 3
        second = await listed(client, a, action="api_key.created")
        since = second[2]["created_at"]  # the three keys made here, and make_tenant's before
        _, rows = await download(client, a, action="api_key.created", since=since)
        assert len(rows) == 3
        _, rows = await download(client, a, target=f"tenant:{b.tenant_id}")
        assert rows == []  # another tenant's entries are never in it, even asked for by name
        # the other tenant's export: its own two entries and its export, none of a's
        _, rows = await download(client, b)
        assert [x["action"] for x in rows] == [
            "audit_log.exported", "api_key.created", "tenant.created"]  # fmt: skip
        assert not any(str(a.tenant_id) in x["target"] for x in rows)
        # each export is in the trail with its filters
        exported = await listed(client, a, action="audit_log.exported")
        assert exported[0]["payload"]["filters"] == {"target": f"tenant:{b.tenant_id}"}
        assert exported[1]["payload"]["filters"]["since"] == since.replace("Z", "+00:00")


async def test_cells_are_quoted_and_never_formulas(suite, dsn):
    t = await make_tenant(dsn)
    async with connected(dsn) as conn, conn.transaction():
        await audit.record(
            conn, tenant_id=t.tenant_id, actor="=HYPERLINK(\"http://x\",\"y\")",
            action="test.tricky", target="-2+3,\"four\"\nfive",
            payload={"note": "a, \"quoted\"\nline", "name": "+cmd"}, request_id="@SUM(A1)",
        )  # fmt: skip
        await audit.record(
            conn, tenant_id=t.tenant_id, actor="\tx", action="test.tricky", target="+1"
        )
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        r, rows = await download(client, t, action="test.tricky")
    assert [(x["actor"], x["target"]) for x in rows] == [
        ("'\tx", "'+1"),
        ('\'=HYPERLINK("http://x","y")', '\'-2+3,"four"\nfive'),
    ]
    assert rows[1]["request_id"] == "'@SUM(A1)"
    assert json.loads(rows[1]["details"]) == {"note": 'a, "quoted"\nline', "name": "+cmd"}
    assert b'"\'-2+3,""four""\nfive"' in r.content  # RFC 4180 quoting, doubled quotes
    assert r.content.endswith(b"\r\n")


@pytest.mark.parametrize("role", [Role.viewer, Role.editor, Role.publisher])
async def test_only_admins_export(suite, dsn, role):
    admin = await make_tenant(dsn)
    low = await add_key(dsn, admin, role)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        r = await client.get("/api/v1/audit-logs/export.csv", headers=low.headers)
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM, r.text
        assert (await client.get("/api/v1/audit-logs/export.csv")).status_code == 401
        bad = await client.get(
            "/api/v1/audit-logs/export.csv", headers=admin.headers,
            params={"since": "2026-11-26T10:00:00Z", "until": "2026-11-26T09:00:00Z"},
        )  # fmt: skip
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_time_range"
    # refusals export nothing and record no export
    async with connected(dsn) as conn:
        assert not await conn.fetchval(
            "SELECT count(*) FROM audit_logs WHERE tenant_id = $1 AND action = $2",
            admin.tenant_id, "audit_log.exported",
        )  # fmt: skip


async def test_documented_in_the_merged_openapi(suite):
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        doc = (await client.get("/openapi.json")).json()
    op = doc["paths"]["/api/v1/audit-logs/export.csv"]["get"]
    assert {p["name"] for p in op["parameters"]} == {
        "action", "action_prefix", "actor", "target", "since", "until"}  # fmt: skip
    assert "text/csv" in op["responses"]["200"]["content"]
    assert "`details`" in op["description"] and "100,000" in op["description"]


async def test_the_stream_reads_page_by_page_up_to_its_bound(dsn):
    t = await make_tenant(dsn)  # seq 1, 2
    async with connected(dsn) as conn, conn.transaction():
        for i in range(7):  # seq 3..9
            await audit.record(conn, tenant_id=t.tenant_id, actor="test", action=f"test.n{i}")

    async def json_codec(conn: asyncpg.Connection) -> None:
        await conn.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )

    pool = await asyncpg.create_pool(dsn, min_size=0, max_size=1, init=json_codec)
    try:
        database = Database(pool, acquire_timeout=5)

        async def seqs(**bounds) -> tuple[list[int], int]:
            chunks = [c async for c in export.stream(database, tenant_id=t.tenant_id,
                                                     filters=service.Filters(), **bounds)]  # fmt: skip
            rows = list(csv.reader(io.StringIO(b"".join(chunks).decode(), newline="")))
            return [int(r[0]) for r in rows[1:]], len(chunks)

        assert await seqs(page_rows=2) == (list(range(9, 0, -1)), 1 + 5)  # header, 5 pages
        assert await seqs(page_rows=3, max_rows=5) == ([9, 8, 7, 6, 5], 1 + 2)
        assert await seqs(page_rows=3, max_rows=9) == (list(range(9, 0, -1)), 1 + 3)
    finally:
        await pool.close()
