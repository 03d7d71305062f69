"""Recommendations through the gateway and the real services, on a database of their own whose
population is planted here, so that the statistics (and so the expectations) are known."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from common import db, migrate
from common.roles import Role
from seedos_cli import demo
from tests.conftest import Suite, start_suite
from tests.support import TenantKey, add_key, create_database, drop_database, make_tenant

PROBLEM = "application/problem+json"
PATH = "/api/v1/marketplace/recommendations"
CATALOG_SIZE = 44  # the demo catalog


@dataclass
class Planted:
    dsn: str
    suite: Suite


# (industry, size, installed services (oldest first), how many such tenants)
POPULATION = [
    ("fintech", 120, ["stripe", "hubspot", "intercom"], 12),
    ("fintech", 120, ["stripe", "hubspot"], 3),
    ("fintech", 120, ["stripe", "salesforce", "slack"], 5),
    ("fintech", 120, ["salesforce", "slack"], 10),
    ("retail", 5, ["shopify", "mailchimp"], 20),
    ("healthcare", 30, ["box"], 8),
    ("healthcare", 30, ["dropbox"], 8),
]


async def _plant(dsn: str) -> None:
    conn = await db.connect(dsn)
    try:
        async with conn.transaction():
            for industry, size, services, count in POPULATION:
                for _ in range(count):
                    tenant_id = await conn.fetchval(
                        "INSERT INTO tenants (slug, name, industry, size) VALUES ($1, $2, $3, $4)"
                        " RETURNING id",
                        f"p-{uuid.uuid4().hex[:12]}", "Planted", industry, size,
                    )  # fmt: skip
                    # installed in the order listed, a day apart (the model learns the order)
                    await conn.executemany(
                        "INSERT INTO integration_connectors (tenant_id, connector_name,"
                        " service_name, created_at) VALUES ($1, $2, $2,"
                        " now() - make_interval(days => $3))",
                        [(tenant_id, s, len(services) - k) for k, s in enumerate(services)],
                    )
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def planted_db(admin_dsn: str) -> AsyncIterator[str]:
    url = await create_database(admin_dsn, prefix="seedos_recs")
    conn = await db.connect(url)
    try:
        await migrate.apply(conn)
        await demo.seed(conn)
    finally:
        await conn.close()
    await _plant(url)
    yield url
    await drop_database(admin_dsn, url)


@pytest.fixture(scope="module")
def planted(planted_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planted]:
    """The services on the planted database, rebuilding the shared statistics every 0.5 s."""
    running = start_suite(
        planted_db,
        tmp_path_factory.mktemp("recs") / "services.log",
        SEEDOS_MARKETPLACE_RECOMMENDATIONS_REFRESH_SECONDS="0.5",
    )
    try:
        yield Planted(planted_db, running)
    finally:
        running.supervisor.stop()


async def _recommend(client: httpx.AsyncClient, t: TenantKey, k: int = 10) -> dict:
    r = await client.get(PATH, params={"k": k}, headers=t.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def _fresh(client: httpx.AsyncClient, t: TenantKey, since: datetime, k: int = 10) -> dict:
    """Recommendations from statistics rebuilt after ``since`` (polled, 20 s at most)."""
    deadline = time.monotonic() + 20
    while True:
        body = await _recommend(client, t, k)
        if datetime.fromisoformat(body["as_of"]) > since:
            return body
        assert time.monotonic() < deadline, "the statistics were not rebuilt within 20 s"
        await asyncio.sleep(0.1)


def _slugs(body: dict) -> list[str]:
    return [item["slug"] for item in body["items"]]


def _reason(item: dict, kind: str) -> dict | None:
    return next((r for r in item["reasons"] if r["kind"] == kind), None)


async def test_a_new_tenant_gets_its_segment_priors_and_featured_connectors(planted):
    admin = await make_tenant(planted.dsn, industry="fintech", size=150)
    viewer = await add_key(planted.dsn, admin, Role.viewer)
    async with httpx.AsyncClient(base_url=planted.suite.gateway) as client:
        body = await _recommend(client, viewer)
    items = body["items"]
    assert len(items) == 10
    assert body["profile"] == {"industry": "fintech", "size_band": "51-200 employees",
                               "description_used": False, "installed": 0}  # fmt: skip
    # stripe: 20 of the 30 fintech companies of this size band, the most in the segment
    assert items[0]["slug"] == "stripe"
    segment = _reason(items[0], "segment")
    assert segment["text"].startswith("used by ")
    assert "of fintech companies of your size (51-200 employees)" in segment["text"]
    assert 0.55 < segment["rate"] < 0.68 and segment["tenants"] >= 30
    # featured entries get a lift for a tenant with nothing installed, and say so
    featured = [i for i in items if i["is_featured"]]
    assert featured and all(_reason(i, "featured") for i in featured)
    assert {"hubspot", "salesforce", "slack"} <= set(_slugs(body))
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    for item in items:
        assert item["reason"] == item["reasons"][0]["text"] and item["reason"]


async def test_a_tenant_without_a_profile_gets_what_everyone_uses(planted):
    t = await make_tenant(planted.dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=planted.suite.gateway) as client:
        body = await _recommend(client, t, k=5)
    assert body["profile"]["industry"] is None and body["profile"]["size_band"] is None
    for item in body["items"]:
        assert "of companies on the platform" in _reason(item, "segment")["text"]


async def test_installed_connectors_are_never_recommended_and_an_install_shows_at_once(planted):
    t = await make_tenant(planted.dsn, role=Role.editor, industry="fintech", size=120)
    async with httpx.AsyncClient(base_url=planted.suite.gateway, headers=t.headers) as client:
        before = await _recommend(client, t)
        assert "hubspot" in _slugs(before) and "intercom" in _slugs(before)
        r = await client.post("/api/v1/integrations", json={"connector": "hubspot"})
        assert r.status_code == 201, r.text

        after = await _recommend(client, t)  # the next request, no waiting for a refresh
        assert "hubspot" not in _slugs(after)
        assert after["profile"]["installed"] == 1
        assert _slugs(after) != _slugs(before)
        # 12 of the 15 companies with HubSpot also have Intercom
        intercom = next(i for i in after["items"] if i["slug"] == "intercom")
        assert _slugs(after).index("intercom") < _slugs(before).index("intercom")
        assert _slugs(after).index("intercom") < 3
        co = _reason(intercom, "co_installed")
        assert co["with_connector"] == "hubspot" and co["weight"] > 0
        assert co["with_connectors"] == ["hubspot"]
        # (the next rebuild, every 0.5 s here, may already count this tenant's own install)
        assert re.match(r"likely with HubSpot: (80% of the 15|75% of the 16)"
                        r" companies with HubSpot use it \(\d+\.\dx the usual rate\)$",
                        co["text"]), co["text"]  # fmt: skip
        # two CRMs are rarely installed together: Salesforce drops
        salesforce = [next(i["score"] for i in x["items"] if i["slug"] == "salesforce")
                      for x in (before, after)]  # fmt: skip
        assert salesforce[1] < salesforce[0] / 2

        configs = {"slack": {"channel_id": "C0123456789"},  # what each definition requires
                   "github": {"owner": "octocat", "repo": "Hello-World"}}  # fmt: skip
        for slug, config in configs.items():
            r = await client.post("/api/v1/integrations", json={"connector": slug,
                                                                "config": config})  # fmt: skip
            assert r.status_code == 201, r.text
        # asking for more than the catalog has: everything but the three installed
        everything = await _recommend(client, t, k=50)
        assert len(everything["items"]) == CATALOG_SIZE - 3
        # each says how far it is known to work, as the catalog does (badges on its cards)
        levels = {i["slug"]: i["verification"] for i in everything["items"]}
        assert (levels["stripe"], levels["gmail"], levels["salesforce"], levels["postgresql"]) == (
            "verified", "checked", "described", None)  # fmt: skip
        assert not {"hubspot", "slack", "github"} & set(_slugs(everything))

        installed = (await client.get("/api/v1/integrations")).json()["items"]
        hubspot = next(i for i in installed if i["service_name"] == "hubspot")
        assert (await client.delete(f"/api/v1/integrations/{hubspot['id']}")).status_code == 204
        assert "hubspot" in _slugs(await _recommend(client, t, k=50))


async def test_the_description_counts_and_the_reason_says_which_words(planted):
    admin = await make_tenant(planted.dsn, industry="retail", size=5)
    async with httpx.AsyncClient(base_url=planted.suite.gateway, headers=admin.headers) as client:
        before = _slugs(await _recommend(client, admin, k=50))
        r = await client.patch("/api/v1/tenant", json={
            "description": "We run an online ticketing desk: customer support tickets and"
                           " help center articles for our shoppers."})  # fmt: skip
        assert r.status_code == 200, r.text
        body = await _recommend(client, admin, k=50)  # the profile is read on every request
    assert body["profile"]["description_used"] is True
    after = _slugs(body)
    matched = [i for i in body["items"] if _reason(i, "description")]
    assert {"zendesk", "freshdesk"} <= {i["slug"] for i in matched}
    zendesk = next(i for i in matched if i["slug"] == "zendesk")
    text = _reason(zendesk, "description")["text"]
    assert text.startswith("matches your description (") and "ticket" in text
    assert after.index("zendesk") < before.index("zendesk")
    assert after.index("freshdesk") < before.index("freshdesk")


async def test_connectors_that_fail_often_are_ranked_lower_and_it_says_why(planted):
    t = await make_tenant(planted.dsn, role=Role.viewer, industry="healthcare", size=30)
    async with httpx.AsyncClient(base_url=planted.suite.gateway) as client:
        before = _slugs(await _recommend(client, t, k=50))
        # box and dropbox: 8 of 16 each; the tie goes by name
        assert before.index("box") < before.index("dropbox")
        marker = datetime.now(UTC)
        conn = await asyncpg.connect(planted.dsn)
        try:
            # as connector_service records calls: the connector's own failures (transport)
            # count; a tenant's refused credentials (auth) do not
            ok, theirs, ours = (
                '{"outcome": "ok"}',
                '{"outcome": "transport"}',
                '{"outcome": "auth"}',
            )
            rows = ([("latency_ms", 120.0, ok)] * 200 + [("error", 1.0, theirs)] * 90
                    + [("error", 1.0, ours)] * 60)  # fmt: skip
            await conn.executemany(
                "INSERT INTO connector_metrics (tenant_id, service_name, metric_type, value,"
                " labels) VALUES ($1, 'box', $2, $3, $4::jsonb)",
                [(t.tenant_id, kind, value, labels) for kind, value, labels in rows],
            )
            # an old failure is outside the window and does not count
            await conn.execute(
                "INSERT INTO connector_metrics (tenant_id, service_name, metric_type, value,"
                " labels, timestamp) SELECT $1, 'dropbox', kind, 1, '{\"outcome\": \"timeout\"}',"
                " now() - interval '30 days'"
                " FROM unnest(array['latency_ms', 'error']) AS kind, generate_series(1, 100)",
                t.tenant_id,
            )
        finally:
            await conn.close()
        body = await _fresh(client, t, marker, k=50)
    after = _slugs(body)
    assert after.index("box") > after.index("dropbox")
    box = next(i for i in body["items"] if i["slug"] == "box")
    health = _reason(box, "health")
    assert health["weight"] < 0 and box["reasons"][-1] == health
    assert health["text"] == "ranked lower: 45% of its calls failed in the last 7 days (90 of 200)"
    dropbox = next(i for i in body["items"] if i["slug"] == "dropbox")
    assert _reason(dropbox, "health") is None


@pytest.mark.parametrize("k", ["0", "51", "-1", "ten"])
async def test_bad_k_is_422_problem(planted, k):
    t = await make_tenant(planted.dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=planted.suite.gateway, headers=t.headers) as client:
        r = await client.get(PATH, params={"k": k})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert r.json()["code"] == "validation_failed"


async def test_without_a_key_is_401(planted):
    async with httpx.AsyncClient(base_url=planted.suite.gateway) as client:
        r = await client.get(PATH)
    assert r.status_code == 401 and r.headers["content-type"] == PROBLEM
