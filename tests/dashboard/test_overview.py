"""The integrations overview: the empty state says what to do, an install shows its status,
circuit, last sync, error rate and latency sparkline from the metrics endpoint, and the filters
narrow the list; both themes pass axe."""

from __future__ import annotations

import asyncio
import re
import time

from playwright.async_api import expect

from tests.dashboard.conftest import axe, installed, settled, shoot


async def test_an_empty_tenant_is_told_what_to_do(signed_in) -> None:
    seat = await signed_in()
    await seat.goto("/")
    await expect(seat.page.get_by_role("heading", name="No integrations yet")).to_be_visible()
    link = seat.page.get_by_role("link", name="Browse the marketplace")
    await expect(link).to_have_attribute("href", "/marketplace")
    await axe(seat.page, "overview, empty")
    await shoot(seat.page, "overview-empty")
    assert seat.errors == []


async def test_installs_with_their_health(dash, signed_in) -> None:
    seat = await signed_in()
    iid = await installed(dash, seat)
    await seat.api.post(f"/api/v1/integrations/{iid}/check")  # one call in the last 24 h
    deadline = time.monotonic() + 15  # written by the recorder when it next flushes
    while (await seat.api.get(f"/api/v1/integrations/{iid}/metrics")).json()["totals"]["calls"] < 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    await seat.goto("/")
    page = seat.page
    row = page.locator(f'tr[data-id="{iid}"]')
    await expect(row.get_by_role("link", name=dash.slug)).to_have_attribute(
        "href", f"/integrations/{iid}"
    )
    await expect(row.locator(".badge").first).to_have_text("active")
    await expect(row.locator(".latency svg[role=img]")).to_have_attribute(
        "aria-label", re.compile(r"p95 latency over 24 hours: lowest \d+ ms")
    )
    await settled(page)
    await axe(page, "overview")
    await shoot(page, "overview")
    # the filters: a status nothing has empties the list and says so
    await page.get_by_label("Status").select_option("disabled")
    await expect(
        page.get_by_role("heading", name="No integration matches these filters")
    ).to_be_visible()
    await page.get_by_label("Status").select_option("")
    await page.get_by_label("Name or connector").fill("no-such-thing")
    await expect(row).to_have_count(0)
    await page.get_by_label("Name or connector").fill(dash.slug[:6])
    await expect(row).to_have_count(1)
    # the dark theme, by the person's choice, kept across pages
    await page.get_by_role("button", name="Dark theme").click()
    await expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    await page.reload()
    await expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    await settled(page)
    await axe(page, "overview, dark")
    await shoot(page, "overview-dark")
    assert seat.errors == []
