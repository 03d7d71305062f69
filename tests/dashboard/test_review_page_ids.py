"""Review: the integration page put the id from its own URL into API paths unencoded. A link to
/integrations/..%5Ctenant gives the page the id ``..\\tenant``; the browser's URL parser
reads a backslash as a slash, so the page's GET went to /api/v1/tenant (and its buttons would
send the person's CSRF-token-bearing changes to paths off the integrations API). An id is one
path segment: the page must say there is no such integration."""

from __future__ import annotations

from playwright.async_api import expect

from tests.dashboard.conftest import settled


async def test_an_id_with_path_tricks_stays_one_segment(signed_in) -> None:
    seat = await signed_in()
    page = seat.page
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    await seat.goto("/integrations/..%5Ctenant")
    await settled(page)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Integration not found")
    api = [u for u in asked if "/api/" in u]
    assert api and all("/api/v1/integrations/" in u for u in api), api
