"""Verification levels in the dashboard (issue 18, part 2): a badge in words on every card and on
a connector's page with what the level means and rests on, a filter by level kept in the URL, and
the install wizard saying, before the install is confirmed, that a connector was written from
documentation only (and the server's notice after). axe and screenshots in every state."""

from __future__ import annotations

import re

from playwright.async_api import expect

from common.roles import Role
from tests.connector_service.rig import register
from tests.dashboard.conftest import axe, settled, shoot
from tests.support import connected

APOSTROPHE = "\u2019"  # the dashboard's typographic apostrophe
NOTES = {
    "described": "Written from the provider's API documentation; not checked against a description.",
    "verified": "Passes the conformance suite against the demo CRM itself.",
}


async def _levelled(dash, dsn: str, level: str) -> str:
    """The demo CRM's connector once more in the catalog, at ``level``; its slug."""
    slug = await register(dsn, dash.rig.crm_connector.url)
    async with connected(dsn) as conn:
        await conn.execute(
            "UPDATE marketplace_connectors SET verification = $2, verification_note = $3"
            " WHERE slug = $1",
            slug, level, NOTES[level],
        )  # fmt: skip
    return slug


async def test_levels_on_cards_the_filter_and_the_detail_page(dash, dsn, signed_in) -> None:
    verified = await _levelled(dash, dsn, "verified")
    seat = await signed_in(role=Role.viewer)
    page = seat.page
    await seat.goto(f"/marketplace?q={verified}&verification=verified")
    card = page.locator(f'#results .connector-card[data-slug="{verified}"]')
    badge = card.locator(".badge.level")
    await expect(badge).to_have_text("Verification: Verified")
    await expect(page.get_by_role("radio", name="Verified")).to_be_checked()
    await expect(page.locator("#result-status")).to_contain_text(f"for “{verified}” (verified)")
    await settled(page)
    await axe(page, "marketplace, level from the address")

    # another level leaves it out; any level brings it back; the address follows
    await page.get_by_role("radio", name="Described only").check()
    await expect(page).to_have_url(re.compile(r"verification=described"))
    await expect(card).to_have_count(0)
    await page.get_by_role("radio", name="Any level").check()
    await expect(card).to_be_visible()
    await expect(page).not_to_have_url(re.compile(r"verification="))

    # the whole catalog at one level: as many as the API counts, every card says that level
    await page.get_by_label("Search connectors").fill("")
    await page.get_by_role("radio", name="Described only").check()
    listed = await seat.api.get(
        "/api/v1/marketplace/connectors", params={"verification": "described"}
    )
    total = sum(listed.json()["category_counts"].values())
    assert total >= 1
    noun = "connector" if total == 1 else "connectors"
    await expect(page.locator("#result-status")).to_have_text(
        f"{total} {noun} found (described only)"
    )
    levels = await page.locator("#results .badge.level").all_text_contents()
    assert levels and set(levels) == {"Verification: Described only"}
    await expect(page.get_by_role("heading", name="Featured")).to_be_hidden()
    await settled(page)
    await axe(page, "marketplace, filtered by level")
    await shoot(page, "marketplace-level")
    await page.get_by_role("button", name="Dark theme").click()
    await axe(page, "marketplace, filtered by level, dark")

    # the connector's page: the level, what it means, what it rests on
    await seat.goto(f"/marketplace/{verified}")
    facts = page.locator("#verification")
    await expect(facts.locator(".badge.level")).to_have_text("Verification: Verified")
    await expect(facts).to_contain_text("passes the conformance suite against a stand-in")
    await expect(facts).to_contain_text(NOTES["verified"])
    await settled(page)
    await axe(page, "connector, verified")
    await seat.goto(f"/marketplace/{dash.slug}")  # published by hand: not rated
    await expect(page.locator("#verification .badge.level")).to_have_text("Verification: Not rated")
    assert seat.errors == []


async def test_the_wizard_says_a_described_connector_was_not_checked(dash, dsn, signed_in) -> None:
    described = await _levelled(dash, dsn, "described")
    seat = await signed_in(role=Role.editor)
    page = seat.page
    await seat.goto(f"/marketplace/{described}")
    facts = page.locator("#verification")
    await expect(facts.locator(".badge.level")).to_have_text("Verification: Described only")
    await expect(facts).to_contain_text(
        f"written from the provider{APOSTROPHE}s documentation only"
    )
    await expect(facts).to_contain_text(NOTES["described"])
    await settled(page)
    await axe(page, "connector, described")
    await shoot(page, "connector-described")

    await page.get_by_role("button", name=f"Install {described}").click()
    await expect(page.locator("#described-notice")).to_have_count(0)  # not yet: at the review
    await page.get_by_label("Demo CRM URL").fill(dash.rig.crm.url)
    await page.get_by_label("API key").fill(dash.rig.crm_key)
    await page.get_by_role("button", name="Next: review").click()
    await expect(page.get_by_role("heading", name="Review")).to_be_focused()
    notice = page.locator("#described-notice")
    await expect(notice).to_contain_text(
        f"{described} was written from the provider{APOSTROPHE}s API documentation only and has"
        f" not been checked against the provider{APOSTROPHE}s API"
    )
    install = page.get_by_role("button", name="Install", exact=True)
    await expect(install).to_have_attribute("aria-describedby", "described-notice")
    await expect(install).to_have_accessible_description(re.compile("^Described only. "))
    assert (await seat.api.get("/api/v1/integrations")).json()["items"] == []  # not yet
    await axe(page, "wizard, review of a described connector")
    await shoot(page, "connector-wizard-described")
    await page.get_by_role("button", name="Dark theme").click()
    await axe(page, "wizard, review of a described connector, dark")

    await install.click()
    await expect(page.get_by_text("Step 3 of 3")).to_be_visible()
    await expect(page.locator("#install-notice")).to_contain_text(
        "written from the provider's API documentation only"
    )  # the server's own words (connector_service's answer)
    items = (await seat.api.get("/api/v1/integrations")).json()["items"]
    assert [i["service_name"] for i in items] == [described]
    await expect(page.locator("#install-state .badge")).to_have_text("active", timeout=20_000)
    await axe(page, "wizard, described connector installed")
    assert seat.errors == []
