"""Pagination helpers for the three shapes external APIs use.

Each is an async generator of :class:`Batch` (the items of one response and where to resume),
so a stream's read function can turn batches into pages::

    async for batch in cursor_pages(ctx.http, "/contacts", cursor=cursor, limit=100):
        yield Page(records=batch.items, next_cursor=batch.resume, has_more=batch.has_more)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from seedos_sdk.errors import PermanentError
from seedos_sdk.http import HttpClient


@dataclass
class Batch:
    """One response's items; ``resume`` continues after them; ``has_more`` if there is more."""

    items: list[dict[str, Any]]
    resume: str | None
    has_more: bool


def _items(body: Any, key: str | None, path: str) -> list[dict[str, Any]]:
    items = body if key is None else (body.get(key) if isinstance(body, dict) else None)
    if not isinstance(items, list):
        raise PermanentError(
            f"GET {path}: expected a list under {key!r}", code="unexpected_response"
        )
    return items


async def cursor_pages(
    http: HttpClient,
    path: str,
    *,
    cursor: str | None = None,
    params: Mapping[str, Any] | None = None,
    limit: int | None = None,
    cursor_param: str = "cursor",
    limit_param: str = "limit",
    items_key: str = "items",
    next_key: str = "next_cursor",
) -> AsyncIterator[Batch]:
    """Follow a cursor the API returns in the body (``{"items": [...], "next_cursor": "..."}``)
    until it returns none."""
    while True:
        query = dict(params or {})
        if cursor is not None:
            query[cursor_param] = cursor
        if limit is not None:
            query[limit_param] = limit
        body = (await http.get(path, params=query)).json()
        items = _items(body, items_key, path)
        following = body.get(next_key) if isinstance(body, dict) else None
        more = following is not None and following != cursor  # a repeated cursor would loop
        yield Batch(items, following or cursor, more)
        if not more:
            return
        cursor = following


async def page_number_pages(
    http: HttpClient,
    path: str,
    *,
    page: int = 1,
    size: int = 100,
    params: Mapping[str, Any] | None = None,
    page_param: str = "page",
    size_param: str = "per_page",
    items_key: str | None = "items",
) -> AsyncIterator[Batch]:
    """Numbered pages: stop at the first page shorter than ``size``. ``resume`` is the number of
    the next page to ask for."""
    while True:
        query = {**(params or {}), page_param: page, size_param: size}
        items = _items((await http.get(path, params=query)).json(), items_key, path)
        more = len(items) >= size
        yield Batch(items, str(page + 1) if more else str(page), more)
        if not more:
            return
        page += 1


async def link_header_pages(
    http: HttpClient,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    items_key: str | None = None,
) -> AsyncIterator[Batch]:
    """Follow ``Link: <...>; rel="next"`` (RFC 8288, as GitHub and GitLab send it). ``resume`` is
    the next URL; pass it back as ``url`` to continue."""
    query: Mapping[str, Any] | None = params
    while True:
        response = await http.get(url, params=query)
        items = _items(response.json(), items_key, url)
        following = response.links.get("next", {}).get("url")
        yield Batch(items, following or url, following is not None)
        if not following:
            return
        url, query = following, None  # the next link carries its own query
