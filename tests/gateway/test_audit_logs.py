"""GET /api/v1/audit-logs through the real gateway: what is recorded, for whom, and how to
filter and page through it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import pairwise

import httpx
import pytest

from common import audit, db
from common.roles import Role
from tests.support import TenantKey, add_key, make_tenant

PROBLEM = "application/problem+json"
PG = {"host": "db.example.com", "port": 5432, "database": "app", "username": "sync"}


async def entries(client: httpx.AsyncClient, t: TenantKey, **params) -> list[dict]:
    """Every page of the tenant's audit log for these filters, newest first."""
    items: list[dict] = []
    cursor = None
    while True:
        query = params | ({"cursor": cursor} if cursor else {})
        r = await client.get("/api/v1/audit-logs", params=query, headers=t.headers)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        if (cursor := r.json()["next_cursor"]) is None:
            return items


async def test_every_change_is_in_the_tenants_audit_log_without_secrets(suite, dsn):
    a, b = await make_tenant(dsn), await make_tenant(dsn)
    actor = f"apikey:{a.key_id}"
    async with httpx.AsyncClient(base_url=suite.gateway, headers=a.headers) as client:
        r = await client.post("/api/v1/integrations", json={
            "connector": "postgresql", "config": PG,
            "credentials": {"password": "hunter2-long-password"}},
            headers={"X-Request-ID": "install-1"})  # fmt: skip
        assert r.status_code == 201, r.text
        iid = r.json()["id"]
        await client.patch(f"/api/v1/integrations/{iid}", json={"config": {**PG, "port": 6543}})
        await client.post(f"/api/v1/integrations/{iid}/disable")
        r = await client.put(f"/api/v1/integrations/{iid}/credentials",
                             json={"credentials": {"password": "rotated-password"}})  # fmt: skip
        assert r.status_code == 200, r.text
        assert (await client.delete(f"/api/v1/integrations/{iid}")).status_code == 204
        key = (await client.post("/api/v1/api-keys", json={"name": "ci"})).json()
        assert (await client.delete(f"/api/v1/api-keys/{key['id']}")).status_code == 200

        r = await client.get("/api/v1/audit-logs")
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        for secret in ("hunter2", "rotated-password", key["key"]):
            assert secret not in r.text
        got_b = await entries(client, b)
    expected = [
        ("api_key.revoked", f"api_key:{key['id']}", actor),
        ("api_key.created", f"api_key:{key['id']}", actor),
        ("integration.deleted", f"integration:{iid}", actor),
        ("integration.credentials_set", f"integration:{iid}", actor),
        ("integration.disabled", f"integration:{iid}", actor),
        ("integration.updated", f"integration:{iid}", actor),
        ("integration.created", f"integration:{iid}", actor),
        ("api_key.created", f"api_key:{a.key_id}", "test"),  # make_tenant's key
        ("tenant.created", f"tenant:{a.tenant_id}", "system:cli"),
    ]
    assert [(i["action"], i["target"], i["actor"]) for i in items] == expected
    assert [i["seq"] for i in items] == list(range(9, 0, -1))
    created = items[6]
    assert created["request_id"] == "install-1"
    assert created["payload"] == {"integration_id": iid, "connector": "postgresql",
                                  "secret_fields": ["password"]}  # fmt: skip
    assert items[3]["payload"]["fields"] == ["password"]
    assert all(i["prev_hash"] == j["hash"] for i, j in pairwise(items))
    assert r.json()["next_cursor"] is None
    # the other tenant sees its own two entries, none of these
    assert [i["action"] for i in got_b] == ["api_key.created", "tenant.created"]
    assert [i["target"] for i in got_b] == [f"api_key:{b.key_id}", f"tenant:{b.tenant_id}"]
    conn = await db.connect(dsn)
    try:
        assert (await audit.verify(conn, a.tenant_id)).ok
    finally:
        await conn.close()


async def test_filters_and_pages(suite, dsn):
    t = await make_tenant(dsn)  # seq 1 tenant.created, 2 its key
    me = f"apikey:{t.key_id}"
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        keys = []
        for i in range(7):  # seq 3..9
            keys.append((await client.post("/api/v1/api-keys", json={"name": f"k{i}"})).json())
        for k in keys[:2]:  # seq 10, 11
            assert (await client.delete(f"/api/v1/api-keys/{k['id']}")).status_code == 200
        everything = await entries(client, t)
        assert [i["seq"] for i in everything] == list(range(11, 0, -1))
        by_seq = {i["seq"]: i for i in everything}

        revoked = await entries(client, t, action="api_key.revoked")
        assert [i["target"] for i in revoked] == [f"api_key:{keys[1]['id']}",
                                                  f"api_key:{keys[0]['id']}"]  # fmt: skip
        assert len(await entries(client, t, action="api_key")) == 0  # exact, not a prefix
        assert len(await entries(client, t, action_prefix="api_key.")) == 10
        assert await entries(client, t, action_prefix="integration.") == []
        assert [i["seq"] for i in await entries(client, t, actor=me)] == list(range(11, 2, -1))
        about = await entries(client, t, target=f"api_key:{keys[0]['id']}")
        assert [i["action"] for i in about] == ["api_key.revoked", "api_key.created"]

        since, until = by_seq[5]["created_at"], by_seq[8]["created_at"]
        window = await entries(client, t, since=since, until=until)
        assert [i["seq"] for i in window] == [7, 6, 5]  # since inclusive, until exclusive
        elsewhere = datetime.fromisoformat(since).astimezone(timezone(timedelta(hours=-5)))
        found = await entries(client, t, since=elsewhere.isoformat(), actor=me)
        assert [i["seq"] for i in found] == list(range(11, 4, -1))

        seen, cursor, sizes = [], None, []
        while True:
            params = {"limit": 4, "action_prefix": "api_key."} | (
                {"cursor": cursor} if cursor else {}
            )
            page = (await client.get("/api/v1/audit-logs", params=params)).json()
            sizes.append(len(page["items"]))
            seen += [i["seq"] for i in page["items"]]
            if (cursor := page["next_cursor"]) is None:
                break
        assert sizes == [4, 4, 2] and seen == list(range(11, 1, -1))


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"since": "yesterday"}, "validation_failed"),
        ({"until": "2026-13-45T00:00:00Z"}, "validation_failed"),
        ({"since": "2026-11-26T10:00:00"}, "validation_failed"),  # no offset: ambiguous
        ({"since": "2026-11-26T10:00:00Z", "until": "2026-11-26T09:00:00Z"},
         "invalid_time_range"),
        ({"cursor": "not-ours!"}, "invalid_cursor"),
        ({"limit": 0}, "validation_failed"),
        ({"action": ""}, "validation_failed"),
    ],
    ids=["words", "impossible-date", "no-offset", "reversed", "cursor", "limit", "empty-action"],
)  # fmt: skip
async def test_bad_filters_are_422_problems(suite, dsn, params, code):
    t = await make_tenant(dsn)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        r = await client.get("/api/v1/audit-logs", params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["code"] == code


async def test_only_admins_read_the_audit_log(suite, dsn):
    admin = await make_tenant(dsn)
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        for role in (Role.viewer, Role.editor, Role.publisher):
            low = await add_key(dsn, admin, role)
            r = await client.get("/api/v1/audit-logs", headers=low.headers)
            assert r.status_code == 403, (role, r.text)
            assert r.headers["content-type"] == PROBLEM and r.json()["code"] == "forbidden"
        r = await client.get("/api/v1/audit-logs")
        assert r.status_code == 401 and r.headers["content-type"] == PROBLEM
        assert (await client.get("/api/v1/audit-logs", headers=admin.headers)).status_code == 200


async def test_documented_in_the_merged_openapi(suite):
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        doc = (await client.get("/openapi.json")).json()
    op = doc["paths"]["/api/v1/audit-logs"]["get"]
    assert {p["name"] for p in op["parameters"]} == {
        "action", "action_prefix", "actor", "target", "since", "until", "cursor", "limit"
    }  # fmt: skip
    for status in ("401", "403", "422"):
        assert PROBLEM in op["responses"][status]["content"], status
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "AuditLogPage"
    )
