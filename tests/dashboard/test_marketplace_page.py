"""The marketplace in a real browser: search as you type forgives a typo and keeps the query in
the URL, a category facet narrows the results, an empty search says what to try; a connector's
page and its install wizard (a 422 shown at its fields, the install watched until active), the
setup guide's progress kept on the server; the whole install by keyboard alone; a viewer gets no
install button. axe and screenshots in every state, both themes."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from common.roles import Role
from tests.dashboard.conftest import axe, installed, settled, shoot


def typo(slug: str) -> str:
    return slug.replace("demo", "dmeo", 1)  # what full-text search misses


async def tab_to(page: Page, selector: str, limit: int = 80) -> None:
    """Press Tab until the focused element matches ``selector``."""
    for _ in range(limit):
        if await page.evaluate("s => !!document.activeElement?.matches(s)", selector):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def saved(response) -> bool:
    """The setup progress's PUT, answered."""
    return response.url.endswith("/setup-progress") and response.request.method == "PUT"


async def test_search_facets_and_empty_results(dash, signed_in) -> None:
    seat = await signed_in(role=Role.viewer)
    page = seat.page
    await seat.goto("/marketplace")
    await expect(page.get_by_role("heading", name="Featured")).to_be_visible()
    await expect(page.get_by_role("status").filter(has_text="connectors found")).to_be_visible()
    await settled(page)
    await axe(page, "marketplace")
    await shoot(page, "marketplace")

    box = page.get_by_label("Search connectors")
    await box.press_sequentially(typo(dash.slug))
    found = page.locator("#results").get_by_role("link", name=dash.slug)
    await expect(found).to_have_attribute("href", f"/marketplace/{dash.slug}")
    # as many as the API finds for the same words (other tests' demo CRMs share the catalog,
    # and a six-letter hex suffix one typo away from another's matches it too)
    listed = await seat.api.get("/api/v1/marketplace/connectors", params={"q": typo(dash.slug)})
    total = sum(listed.json()["category_counts"].values())
    assert dash.slug in [e["slug"] for e in listed.json()["items"]]
    noun = "connector" if total == 1 else "connectors"
    await expect(page.locator("#result-status")).to_have_text(
        f"{total} {noun} found for “{typo(dash.slug)}”"
    )
    await expect(page.get_by_role("heading", name="Featured")).to_be_hidden()
    await expect(page).to_have_url(re.compile(r"\?q=dmeo-crm-"))
    card = page.locator(f'#results .connector-card[data-slug="{dash.slug}"]')
    await expect(card).to_contain_text("tests · CRM")
    # a reload keeps the query and its results
    await page.reload()
    await expect(box).to_have_value(typo(dash.slug))
    await expect(found).to_be_visible()
    await settled(page)
    await axe(page, "marketplace, searched")
    await shoot(page, "marketplace-search")

    # nothing found: the page says what to try
    await box.fill("zzqxv")
    await expect(page.get_by_role("heading", name="No connector matches “zzqxv”")).to_be_visible()
    await expect(page.locator("#result-status")).to_have_text("0 connectors found for “zzqxv”")
    await axe(page, "marketplace, nothing found")
    await shoot(page, "marketplace-empty")
    await page.get_by_role("button", name="Clear the search").click()
    await expect(box).to_be_focused()

    # a facet narrows the results; the API agrees on the count
    counts = (await seat.api.get("/api/v1/marketplace/connectors")).json()["category_counts"]
    await page.get_by_role("radio", name=re.compile(r"^CRM \(")).check()
    await expect(page.locator("#result-status")).to_have_text(
        f"{counts['crm']} connectors found in CRM"
    )
    await expect(page).to_have_url(re.compile(r"category=crm"))
    categories = await page.locator("#results .card-facts").all_inner_texts()
    assert categories and all(c.endswith("· CRM") for c in categories)
    await page.get_by_role("radio", name=re.compile(r"^Payments \(")).check()
    await expect(page.locator(f'#results [data-slug="{dash.slug}"]')).to_have_count(0)
    await expect(page.locator("#result-status")).to_have_text(
        f"{counts['payments']} connectors found in Payments"
    )

    await page.get_by_role("button", name="Dark theme").click()
    await settled(page)
    await axe(page, "marketplace, dark")
    await shoot(page, "marketplace-dark")
    assert seat.errors == []


async def test_wizard_refusal_install_and_setup_progress(dash, signed_in) -> None:
    seat = await signed_in()
    page = seat.page
    await seat.goto(f"/marketplace/{dash.slug}")
    await expect(page.get_by_role("heading", level=1, name=dash.slug)).to_be_visible()
    await expect(page.get_by_role("heading", name="Setup guide")).to_be_visible()
    await settled(page)
    await axe(page, "connector")
    await shoot(page, "connector")

    await page.get_by_role("button", name=f"Install {dash.slug}").click()
    await expect(page.get_by_text("Step 1 of 3")).to_be_visible()
    await expect(page.get_by_role("heading", name="Configure")).to_be_focused()
    await expect(page.locator(".wizard-steps li[aria-current=step]")).to_have_text("Configure")
    await expect(page.get_by_label("API key")).to_have_attribute("type", "password")
    await axe(page, "wizard, configure")
    # a required field left empty is caught before the review
    await page.get_by_label("Demo CRM URL").fill("")
    await page.get_by_role("button", name="Next: review").click()
    await expect(page.locator(".error-summary")).to_be_focused()
    await expect(page.get_by_label("Demo CRM URL")).to_have_attribute("aria-invalid", "true")
    # the server's 422 comes back to its field
    await page.get_by_label("Demo CRM URL").fill(dash.rig.crm.url)
    await page.get_by_label("Page size").fill("0")
    await page.get_by_label("API key").fill(dash.rig.crm_key)
    await page.get_by_role("button", name="Next: review").click()
    await expect(page.get_by_role("heading", name="Review")).to_be_focused()
    await expect(page.locator(".review")).to_contain_text("set (hidden)")
    assert dash.rig.crm_key not in await page.locator(".review").inner_text()
    await axe(page, "wizard, review")
    await page.get_by_role("button", name="Install", exact=True).click()
    page_size = page.get_by_label("Page size")
    await expect(page_size).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#cfg-page_size-error")).to_contain_text("minimum of 1")
    await expect(page.locator(".error-summary")).to_be_focused()
    await expect(page.locator(".error-summary")).to_contain_text("Page size")
    await axe(page, "wizard, refused")
    await shoot(page, "connector-wizard-errors")
    assert (await seat.api.get("/api/v1/integrations")).json()["items"] == []

    await page_size.fill("50")
    await expect(page.get_by_label("API key")).to_have_value(dash.rig.crm_key)  # kept on Back
    await page.get_by_role("button", name="Next: review").click()
    await page.get_by_role("button", name="Install", exact=True).click()
    await expect(page.get_by_text("Step 3 of 3")).to_be_visible()
    await expect(page.locator("#install-state .badge")).to_have_text("active", timeout=20_000)
    items = (await seat.api.get("/api/v1/integrations")).json()["items"]
    assert [(i["service_name"], i["config"]) for i in items] == [
        (dash.slug, {"base_url": dash.rig.crm.url, "page_size": 50})
    ]
    assert (await seat.api.get(f"/api/v1/integrations/{items[0]['id']}/credentials")).json() == {
        "fields_set": ["api_key"]
    }
    await axe(page, "wizard, installed")
    await shoot(page, "connector-wizard-done")
    await expect(page.get_by_role("link", name="Open the install")).to_have_attribute(
        "href", f"/integrations/{items[0]['id']}"
    )

    # the setup guide: a step ticked is kept on the server, and after a reload
    await page.get_by_role("link", name="Follow the setup guide").click()
    await expect(page.locator("#installed-note")).to_contain_text(dash.slug)
    first = page.get_by_role("checkbox", name=re.compile("^Install "))
    async with page.expect_response(saved):
        await first.check()
    await expect(page.locator("#progress-summary")).to_have_text("1 of 2 steps done")
    assert await _setup_done(seat, items[0]["id"]) == [0]
    await page.reload()
    await expect(first).to_be_checked()
    await settled(page)
    await axe(page, "connector, installed")
    await page.get_by_role("button", name="Dark theme").click()
    await axe(page, "connector, dark")
    await shoot(page, "connector-dark")
    # the browser logs the refused request (HTTP 422) itself; nothing else went wrong
    assert [e for e in seat.errors if "status of 422" not in e] == []


async def test_keyboard_only_install(dash, signed_in) -> None:
    seat = await signed_in(role=Role.editor)
    page, keys = seat.page, seat.page.keyboard
    await seat.goto("/marketplace")
    await expect(page.locator("#result-status")).to_contain_text("connectors found")
    await tab_to(page, "#q")
    await keys.type(typo(dash.slug))
    result = f'#results a[href="/marketplace/{dash.slug}"]'
    await page.locator(result).wait_for()
    await tab_to(page, result)
    await keys.press("Enter")
    await page.wait_for_url(f"**/marketplace/{dash.slug}")
    await page.locator("#open-wizard").wait_for()
    await tab_to(page, "#open-wizard")
    await keys.press("Enter")
    await expect(page.locator(".step-heading")).to_be_focused()
    await tab_to(page, "#cfg-base_url")
    await keys.press("ControlOrMeta+a")
    await keys.type(dash.rig.crm.url)
    await tab_to(page, "#cfg-api_key")
    await keys.type(dash.rig.crm_key)
    await tab_to(page, "#install-form button[type=submit]")
    await keys.press("Enter")
    await expect(page.get_by_role("heading", name="Review")).to_be_focused()
    await tab_to(page, "#wizard-install")
    await keys.press("Enter")
    await expect(page.locator("#install-state .badge")).to_have_text("active", timeout=20_000)
    items = (await seat.api.get("/api/v1/integrations")).json()["items"]
    assert [(i["service_name"], i["status"]) for i in items] == [(dash.slug, "active")]
    # on to the setup guide, and a step ticked with the space bar
    await tab_to(page, 'a[href*="#setup-guide"]')
    await keys.press("Enter")
    await page.locator("#step-1").wait_for()
    await tab_to(page, "#step-1")
    async with page.expect_response(saved):
        await keys.press("Space")
    await expect(page.locator("#progress-summary")).to_have_text("1 of 2 steps done")
    assert await _setup_done(seat, items[0]["id"]) == [1]
    assert seat.errors == []


async def _setup_done(seat, iid: str) -> list[int]:
    return (await seat.api.get(f"/api/v1/integrations/{iid}")).json()["setup_done"]


async def test_a_viewer_reads_but_cannot_install(dash, signed_in) -> None:
    seat = await signed_in(role=Role.viewer)
    iid = await installed(dash, seat)
    await seat.api.put(f"/api/v1/integrations/{iid}/setup-progress", json={"done": [1]})
    page = seat.page
    await seat.goto(f"/marketplace/{dash.slug}")
    await expect(page.get_by_text("Editors and admins can install connectors")).to_be_visible()
    await expect(page.get_by_role("button", name=re.compile("^Install"))).to_have_count(0)
    await expect(
        page.locator("#installed-note").get_by_role("link", name=dash.slug)
    ).to_have_attribute("href", f"/integrations/{iid}")
    await expect(page.locator("#step-1")).to_be_checked()
    await expect(page.locator("#step-1")).to_be_disabled()
    await settled(page)
    await axe(page, "connector, viewer")
    await shoot(page, "connector-viewer")
    await seat.goto("/marketplace/no-such-connector")
    await expect(page.get_by_role("heading", level=1, name="Connector not found")).to_be_visible()
    await axe(page, "connector, not found")
    assert [e for e in seat.errors if "status of 404" not in e] == []
