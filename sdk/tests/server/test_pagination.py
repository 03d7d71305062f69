"""The pagination helpers against a stand-in for an external API (httpx.MockTransport)."""

from __future__ import annotations

import httpx

from seedos_sdk.http import HttpClient
from seedos_sdk.pagination import cursor_pages, link_header_pages, page_number_pages

ITEMS = [{"id": i} for i in range(23)]


def api(request: httpx.Request) -> httpx.Response:
    q = request.url.params
    if request.url.path == "/cursor":
        start = int(q.get("cursor", 0))
        size = int(q.get("limit", 10))
        chunk = ITEMS[start : start + size]
        following = str(start + size) if start + size < len(ITEMS) else None
        return httpx.Response(200, json={"items": chunk, "next_cursor": following})
    if request.url.path == "/stuck":
        return httpx.Response(200, json={"items": [{"id": 1}], "next_cursor": "same"})
    if request.url.path == "/numbered":
        page, size = int(q["page"]), int(q["per_page"])
        return httpx.Response(200, json={"items": ITEMS[(page - 1) * size : page * size]})
    if request.url.path == "/linked":
        start = int(q.get("from", 0))
        headers = {}
        if start + 10 < len(ITEMS):
            headers["Link"] = f'<https://api.example/linked?from={start + 10}>; rel="next"'
        return httpx.Response(200, json=ITEMS[start : start + 10], headers=headers)
    return httpx.Response(404)


def client() -> HttpClient:
    return HttpClient(base_url="https://api.example", transport=httpx.MockTransport(api))


async def test_cursor_pages_follow_the_body_cursor_and_resume():
    async with client() as http:
        batches = [b async for b in cursor_pages(http, "/cursor", limit=10)]
        assert [len(b.items) for b in batches] == [10, 10, 3]
        assert [b.has_more for b in batches] == [True, True, False]
        assert [i["id"] for b in batches for i in b.items] == list(range(23))
        resumed = [b async for b in cursor_pages(http, "/cursor", cursor=batches[0].resume)]
        assert resumed[0].items[0]["id"] == 10


async def test_page_numbers_stop_at_a_short_page():
    async with client() as http:
        batches = [b async for b in page_number_pages(http, "/numbered", size=10)]
    assert [len(b.items) for b in batches] == [10, 10, 3] and batches[-1].has_more is False


async def test_link_header_pages():
    async with client() as http:
        batches = [b async for b in link_header_pages(http, "/linked")]
    assert [len(b.items) for b in batches] == [10, 10, 3]
    assert batches[0].resume == "https://api.example/linked?from=10"


async def test_a_repeated_cursor_ends_the_walk():
    async with client() as http:
        batches = [b async for b in cursor_pages(http, "/stuck", cursor="same")]
    assert len(batches) == 1 and batches[0].has_more is False
