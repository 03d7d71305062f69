"""Verification levels in the catalog API (issue 18): each entry says how far it is known to work
(verified, checked, described, or not rated) and what that rests on; the catalog filters by level
like by any other filter: the page, the category counts (from memory and from SQL), typo matches
and cursors; another level is refused (real processes, real Postgres)."""

from __future__ import annotations

import asyncio
import secrets
import string
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from common.roles import Role
from marketplace_service.catalog import repository, service
from tests.support import connected, make_tenant

CONNECTORS = "/api/v1/marketplace/connectors"
NOTES = {
    "verified": "Passes the conformance suite against a stand-in of the provider.",
    "checked": "Requests and answers checked against the provider's own API description.",
    "described": "Written from the provider's API documentation; not checked.",
}
# (name suffix, category, level): three CRMs of each level, two analytics entries
LEVELLED = [
    ("Alpha", "crm", "verified"),
    ("Bravo", "crm", "checked"),
    ("Charlie", "crm", "described"),
    ("Delta", "analytics", "described"),
    ("Echo", "analytics", None),
]


def _raw(word: str, suffix: str, category: str) -> dict:
    return {
        "slug": f"{word}-{suffix.lower()}", "name": f"{word.title()} {suffix}",
        "description": f"Keeps {word} records", "logo_url": None, "category": category,
        "vendor": "Levels Inc", "auth_scheme": "api_key", "scopes": [], "setup_guide_url": None,
        "is_featured": False, "allow_multiple": True, "config_schema": {"type": "object"},
    }  # fmt: skip


@pytest.fixture
async def levelled(dsn: str) -> AsyncIterator[str]:
    """Five entries named after a word of their own (letters only: a title word a typo can stand
    for), one of each level and one not rated; the word. Removed afterwards."""
    word = "veriflux" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(6))
    async with connected(dsn) as conn:
        for suffix, category, level in LEVELLED:
            entry = service.demo_entry(_raw(word, suffix, category))
            entry |= {"verification": level, "verification_note": NOTES.get(level or "")}
            assert await repository.upsert(conn, entry) is None
        try:
            yield word
        finally:
            await conn.execute("DELETE FROM marketplace_connectors WHERE slug LIKE $1", f"{word}-%")


async def _search(client: httpx.AsyncClient, **params) -> dict:
    r = await client.get(CONNECTORS, params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def _all_pages(client: httpx.AsyncClient, **params) -> tuple[list[dict], list[dict]]:
    items, counts, cursor = [], [], None
    while True:
        page = await _search(client, **params, **({"cursor": cursor} if cursor else {}))
        items += page["items"]
        counts.append(page["category_counts"])
        if (cursor := page["next_cursor"]) is None:
            return items, counts


def _suffixes(items: list[dict]) -> list[str]:
    return [e["name"].split()[-1] for e in items]


async def _eventually(client: httpx.AsyncClient, counts: dict[str, int], **params) -> dict:
    """The search once its counts are ``counts``: marketplace_service reads the catalog again
    when PostgreSQL notifies it of a change made elsewhere (here, by the test), a moment later."""
    deadline = time.monotonic() + 10
    while (page := await _search(client, **params))["category_counts"] != counts:
        assert time.monotonic() < deadline, (params, page["category_counts"])
        await asyncio.sleep(0.05)
    return page


async def test_entries_carry_their_level_and_what_it_rests_on(suite, dsn, levelled):
    t = await make_tenant(dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        page = await _eventually(client, {"crm": 3, "analytics": 2}, q=levelled, sort="name")
        assert _suffixes(page["items"]) == [s for s, _, _ in LEVELLED]
        for item, (suffix, _, level) in zip(page["items"], LEVELLED, strict=True):
            assert (item["verification"], item["verification_note"]) == (
                level, NOTES.get(level or "")
            ), suffix  # fmt: skip
            detail = (await client.get(f"{CONNECTORS}/{item['slug']}")).json()
            assert detail["verification"] == level
            assert detail["verification_note"] == item["verification_note"]

        # the platform's catalog as loaded from its definitions and verification.json
        stripe = (await client.get(f"{CONNECTORS}/stripe")).json()
        assert stripe["verification"] == "verified" and "localstripe" in stripe["verification_note"]
        github = (await client.get(f"{CONNECTORS}/github")).json()
        assert github["verification"] == "verified" and "Prism" in github["verification_note"]
        postgresql = (await client.get(f"{CONNECTORS}/postgresql")).json()
        assert postgresql["verification"] is None
        assert postgresql["verification_note"].startswith("Not declarative: ")


async def test_the_level_filters_pages_counts_and_typo_matches(suite, dsn, levelled):
    t = await make_tenant(dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        await _eventually(client, {"crm": 3, "analytics": 2}, q=levelled)
        described = await _search(client, q=levelled, verification="described")
        assert sorted(_suffixes(described["items"])) == ["Charlie", "Delta"]
        assert described["category_counts"] == {"crm": 1, "analytics": 1}
        # the counts leave the category out, the level in
        in_crm = await _search(client, q=levelled, verification="described", category="crm")
        assert _suffixes(in_crm["items"]) == ["Charlie"]
        assert in_crm["category_counts"] == described["category_counts"]
        for level, suffix in (("verified", "Alpha"), ("checked", "Bravo")):
            for sort in ("relevance", "name", "popularity"):
                page = await _search(client, q=levelled, verification=level, sort=sort)
                assert _suffixes(page["items"]) == [suffix], (level, sort)
                assert page["category_counts"] == {"crm": 1}, (level, sort)

        # a typo finds only entries of the level asked for, and counts them under it
        typo = levelled[:3] + levelled[4] + levelled[3] + levelled[5:]  # two letters swapped
        checked = await _search(client, q=typo, verification="checked")
        assert [(e["slug"], e["match"]) for e in checked["items"]] == [
            (f"{levelled}-bravo", "typo")
        ]
        assert checked["category_counts"] == {"crm": 1}
        assert _suffixes((await _search(client, q=typo))["items"]) == [s for s, _, _ in LEVELLED]

        # the whole catalog under a level, page by page: every item of the level, each once,
        # as many as the counts say, the same counts on every page
        whole = await _search(client, verification="described", limit=200)
        items, counts = await _all_pages(client, verification="described", limit=3)
        assert [e["slug"] for e in items] == [e["slug"] for e in whole["items"]]
        assert {e["verification"] for e in items} == {"described"}
        assert len(items) == sum(whole["category_counts"].values()) >= 2
        assert all(c == whole["category_counts"] for c in counts)
        unfiltered = await _search(client, limit=200)
        for category, n in whole["category_counts"].items():
            assert n <= unfiltered["category_counts"][category], category


async def test_a_level_changed_in_the_database_is_followed(suite, dsn, levelled):
    """The in-memory index learns of the change by PostgreSQL's notification, as of any other."""
    t = await make_tenant(dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        await _eventually(client, {"crm": 1}, q=levelled, verification="checked")
        async with connected(dsn) as conn:
            await conn.execute(
                "UPDATE marketplace_connectors SET verification = 'checked' WHERE slug = $1",
                f"{levelled}-echo",
            )
        page = await _eventually(
            client, {"crm": 1, "analytics": 1}, q=levelled, verification="checked"
        )
        assert sorted(_suffixes(page["items"])) == ["Bravo", "Echo"]


async def test_another_level_is_refused(suite, dsn):
    t = await make_tenant(dsn, role=Role.viewer)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        for value in ("unverified", "Verified", "", "none"):
            r = await client.get(CONNECTORS, params={"verification": value})
            assert r.status_code == 422, (value, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["code"] == "validation_failed"
