"""Catalog search through the gateway on the real catalog (the demo catalog the session loads),
next to whatever other tests have registered meanwhile."""

from __future__ import annotations

import asyncio
import secrets
import time

import httpx

from common import db
from common.roles import Role
from marketplace_service.catalog import repository
from marketplace_service.catalog.facets import Reading, term
from marketplace_service.catalog.repository import Filters
from tests.support import make_tenant, metric_total

CONNECTORS = "/api/v1/marketplace/connectors"


async def _search(client: httpx.AsyncClient, **params) -> dict:
    r = await client.get(CONNECTORS, params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def test_crm_ranks_salesforce_and_hubspot_first(suite, dsn):
    t = await make_tenant(dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        # a whole page: the suite's other tests register demo CRMs of their own in the catalog
        page = await _search(client, q="crm", limit=200)
    names = [e["name"] for e in page["items"]]
    assert set(names[:2]) == {"Salesforce", "HubSpot"}, names
    assert {"Pipedrive", "Zoho CRM"} <= set(names)
    assert all(e["match"] == "text" for e in page["items"])
    scores = [e["score"] for e in page["items"]]
    assert scores == sorted(scores, reverse=True)


async def test_a_typo_still_finds_slack(suite, dsn):
    t = await make_tenant(dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        slak = await _search(client, q="slak")
        hubspt = await _search(client, q="hubspt")
        nothing = await _search(client, q="zzqxv")
    assert slak["items"][0]["name"] == "Slack" and slak["items"][0]["match"] == "typo"
    assert slak["category_counts"].get("communication", 0) >= 1
    assert hubspt["items"][0]["name"] == "HubSpot"
    assert nothing["items"] == [] and nothing["category_counts"] == {}


async def test_typo_matches_count_under_every_filter_but_the_category(suite, dsn):
    """A typo match is counted in its category whatever category is asked for (as full-text
    matches are), once, and only the category asked for is on the page."""
    t = await make_tenant(dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        anywhere = await _search(client, q="slak")
        in_crm = await _search(client, q="slak", category="crm")
        in_communication = await _search(client, q="slak", category="communication")
    assert anywhere["category_counts"] == in_crm["category_counts"]
    assert in_crm["category_counts"] == in_communication["category_counts"]
    assert all(e["category"] == "crm" for e in in_crm["items"])
    assert "Slack" not in [e["name"] for e in in_crm["items"]]
    assert in_communication["items"][0]["name"] == "Slack"
    listed = [e for e in anywhere["items"] if e["category"] == "communication"]
    assert anywhere["category_counts"]["communication"] == len(listed)


async def test_a_prefix_that_is_a_stop_word_still_finds_names(suite, dsn):
    """ "in" and "as" are English stop words, which full-text search drops; typed as the start
    of a name (Intercom, Asana) they must still find it."""
    t = await make_tenant(dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        inter = await _search(client, q="inter")
        in_ = await _search(client, q="in")
        as_ = await _search(client, q="as")
        both = await _search(client, q="in com")
    assert "Intercom" in [e["name"] for e in inter["items"]]
    assert "Intercom" in [e["name"] for e in in_["items"] if e["match"] == "text"]
    assert "Asana" in [e["name"] for e in as_["items"] if e["match"] == "text"]
    assert "Intercom" in [e["name"] for e in both["items"]]


async def _all_pages(client: httpx.AsyncClient, **params) -> tuple[list[dict], list[dict]]:
    """Every item of a search, page after page, and each page's counts."""
    items, counts, cursor = [], [], None
    while True:
        page = await _search(client, **params, **({"cursor": cursor} if cursor else {}))
        items += page["items"]
        counts.append(page["category_counts"])
        if (cursor := page["next_cursor"]) is None:
            return items, counts


async def test_what_a_search_finds_does_not_depend_on_the_page_size(suite, dsn):
    """Typo matches are a tier after the text matches that pages like the others: "mail" gives
    Mailchimp and SendGrid (text), then Gmail (typo), whatever the limit, with the same
    counts on every page."""
    t = await make_tenant(dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        whole = await _search(client, q="mail", limit=200)
        names = [e["name"] for e in whole["items"]]
        assert "Gmail" in names and whole["items"][-1]["match"] == "typo"
        assert {"Mailchimp", "SendGrid"} <= set(names)
        for limit in (1, 2, 3):
            items, counts = await _all_pages(client, q="mail", limit=limit)
            assert [e["name"] for e in items] == names, limit
            assert all(c == whole["category_counts"] for c in counts), limit
        scores = [e["score"] for e in whole["items"]]
        assert scores == sorted(scores, reverse=True)
        assert all(e["score"] < 0 for e in whole["items"] if e["match"] == "typo")


async def test_a_query_with_nothing_to_match_finds_nothing(suite, dsn):
    t = await make_tenant(dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        for q in ("!!!", "__", "‿‿"):
            page = await _search(client, q=q)
            assert page == {"items": [], "next_cursor": None, "category_counts": {}}, q
        # every word counts, however many: the ninth too
        eight = "google drive cloud file storage connector api metadata"
        assert (await _search(client, q=eight))["items"]
        assert (await _search(client, q=eight + " zzqxvw"))["items"] == []


async def test_prefixes_and_several_words(suite, dsn):
    t = await make_tenant(dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        sales = await _search(client, q="sales")
        pay = await _search(client, q="pay")
        drive = await _search(client, q="google drive")
        underscored = await _search(client, q="google_sheets")
        vendor = await _search(client, q="atlassian")
    assert sales["items"][0]["name"] == "Salesforce"
    assert pay["items"][0]["name"] == "PayPal"  # the name starts with what was typed
    assert "Stripe" in [e["name"] for e in pay["items"]]  # "payments" in its text
    assert drive["items"][0]["name"] == "Google Drive"
    assert all("Google" in e["vendor"] for e in drive["items"])  # every word must match
    assert underscored["items"][0]["name"] == "Google Sheets"
    assert {e["name"] for e in vendor["items"]} == {"Jira", "Trello"}


async def test_filters_and_category_counts(suite, dsn):
    t = await make_tenant(dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        google = await _search(client, q="google", category="productivity")
        oauth = await _search(client, auth_scheme="api_key", limit=200)
        featured_crm = await _search(client, category="crm", featured="true")
        everything = await _search(client, limit=200)
    assert {e["name"] for e in google["items"]} == {"Google Sheets", "Google Calendar"}
    # counts ignore the category filter: what each category would give for "google"
    assert google["category_counts"]["productivity"] == 2
    assert google["category_counts"]["file-storage"] >= 1
    assert google["category_counts"]["analytics"] >= 1
    assert oauth["items"] and all(e["auth_scheme"] == "api_key" for e in oauth["items"])
    assert {e["name"] for e in featured_crm["items"]} == {"Salesforce", "HubSpot"}
    assert sum(everything["category_counts"].values()) >= len(everything["items"]) >= 44


async def test_sorting_and_cursor_pages_of_a_search(suite, dsn):
    t = await make_tenant(dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        whole = await _search(client, q="api", limit=200)
        seen, cursor = [], None
        while True:
            page = await _search(client, q="api", limit=3, **({"cursor": cursor} if cursor else {}))
            seen += [e["slug"] for e in page["items"]]
            if (cursor := page["next_cursor"]) is None:
                break
        by_name = await _search(client, q="api", sort="name", limit=200)
    assert len(whole["items"]) > 6
    assert seen == [e["slug"] for e in whole["items"]]  # pages add up to the whole, in order
    names = [e["name"] for e in by_name["items"]]
    assert names == sorted(names) and set(names) == {e["name"] for e in whole["items"]}


async def test_bad_parameters_are_422(suite, dsn):
    t = await make_tenant(dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        for params in (
            {"sort": "random"},
            {"auth_scheme": "saml"},
            {"q": "x" * 201},
            {"installed": "maybe"},
            {"sort": "popularity", "cursor": "WyJ4IiwieSJd"},
        ):
            r = await client.get(CONNECTORS, params=params)
            assert r.status_code == 422, (params, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["code"] in {"validation_failed", "invalid_cursor"}


async def test_broad_and_narrow_ranking_give_the_same_order(dsn):
    """The three ways repository.by_relevance reads the description tier (in index order, every
    match then a sort, or among the entries the in-memory index says match under the filters)
    must agree, page after page, under filters too, and give the relevance order: score, then
    name."""
    tenant = await make_tenant(dsn, role=Role.viewer)
    conn = await db.connect(dsn)
    try:
        reading = Reading.read(await repository.facet_rows(conn))
        for q, filters in [
            *((q, Filters(tenant_id=tenant.tenant_id))
              for q in ("connector:*", "crm:*", "api:* & sync:*", "googl:*", "pay:*")),
            ("connector:*", Filters(tenant_id=tenant.tenant_id, category="crm")),
            ("sync:*", Filters(tenant_id=tenant.tenant_id, auth_scheme="oauth2", installed=False)),
            ("connector:*", Filters(tenant_id=tenant.tenant_id, verification="described")),
        ]:  # fmt: skip
            parts = [part.strip() for part in q.split("&")]
            terms = [term(t) for t in await repository.tsqueries(conn, parts)]
            # without the installed filter: a superset, which is fine (the SQL filters again)
            ids = reading.matching_ids(
                terms, category=filters.category, auth_scheme=filters.auth_scheme,
                featured=None, installed=None, verification=filters.verification,
            )  # fmt: skip
            pages: dict[str, list[tuple[float, str]]] = {}
            for way in ("broad", "narrow", "among"):
                after, seen = None, []
                while True:
                    rows = await repository.by_relevance(
                        conn, filters, query=q, name_prefix=q.split(":")[0] + "%", after=after,
                        limit=4, broad=lambda b=way == "broad": asyncio.sleep(0, b),
                        among=(lambda ids=ids: ids) if way == "among" else None,
                    )  # fmt: skip
                    seen += [(r["score"], r["name"]) for r in rows]
                    if len(rows) < 4:
                        break
                    after = (rows[-1]["score"], rows[-1]["name"])
                pages[way] = seen
            assert pages["broad"] == pages["narrow"] == pages["among"], q
            assert pages["broad"] and len(set(pages["broad"])) == len(pages["broad"]), q
            assert pages["broad"] == sorted(pages["broad"], key=lambda sn: (-sn[0], sn[1])), q
    finally:
        await conn.close()


async def test_counts_come_from_memory_and_see_a_publish_at_once(suite, dsn):
    """Once marketplace_service has read the catalog, a search's counts come from its index
    (the metric says so), and an entry published a moment ago is counted by the very next
    search."""
    t = await make_tenant(dsn, role=Role.viewer)
    publisher = await make_tenant(dsn, role=Role.publisher)
    word = "quuxly" + secrets.token_hex(3)
    manifest = {
        "name": f"facet-{word}", "display_name": f"Facet {word}", "version": "1.0.0",
        "description": f"Syncs {word} ledgers", "auth": {"scheme": "api_key"},
        "config_schema": {"type": "object"}, "streams": [], "actions": [],
    }  # fmt: skip
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:

        async def memory_answers() -> float:
            metrics = (await client.get(suite.marketplace_service + "/metrics")).text
            return metric_total(
                metrics, "seedos_marketplace_category_counts_total", source="memory"
            )

        deadline = time.monotonic() + 15
        while True:  # the service reads the catalog shortly after it starts
            before = await memory_answers()
            crm = await _search(client, q="crm")
            if await memory_answers() > before:
                break
            assert time.monotonic() < deadline, "counts never came from memory"
            await asyncio.sleep(0.2)
        assert crm["category_counts"]["crm"] >= 4

        assert (await _search(client, q=word))["category_counts"] == {}
        r = await client.post(CONNECTORS, headers=publisher.headers, json={
            "manifest": manifest, "endpoint_url": "http://127.0.0.1:9",
        })  # fmt: skip
        assert r.status_code == 201, r.text
        found = await _search(client, q=word)
        assert found["category_counts"] == {r.json()["category"] or "": 1}  # "" for none
        assert [e["slug"] for e in found["items"]] == [f"facet-{word}"]
