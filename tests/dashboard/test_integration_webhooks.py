"""An install's provider webhooks on its integration page (issue 18, part 3): what to do at the
provider, the URL made, copied and replaced (confirmed: the old one stops at once), the signing
secret pasted (refused at its field when too short) or made and shown once, the events and what
each does, and the deliveries taken and refused with every refusal's reason in words; a viewer
sees it all and changes nothing; offline, a change is refused and the section says it does not
wait on the device; a connector without webhooks has no such section. axe on every state."""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid

import httpx
from playwright.async_api import Page, expect

from common.roles import Role
from connector_service.webhooks.schemes import sign
from marketplace_service.catalog.service import register_deployed
from tests.connector_service.rig import install_crm
from tests.dashboard.conftest import axe, installed, settled, shoot
from tests.support import connected

SETUP = (
    "In the CRM's settings, Webhooks > Add: paste this install's webhook URL, make a secret"
    " here and paste it there, and choose the contact and company events."
)
WEBHOOKS = {
    "signature": {"scheme": "github"},  # the id and type in X-GitHub-Delivery and -Event
    "setup": SETUP,
    "events": [
        {"types": ["contact.created", "contact.updated"], "stream": "contacts",
         "record": "contact"},
        {"types": ["company.*"], "pull": "companies"},
    ],
}  # fmt: skip
CURLY = "\u2019"  # the dashboard's apostrophe


async def _hooked_connector(dash, dsn: str) -> str:
    """The rig's demo CRM connector in the catalog once more, its manifest declaring the
    provider's webhooks; its slug."""
    async with httpx.AsyncClient() as client:
        manifest = (await client.get(dash.rig.crm_connector.url + "/manifest")).json()
    slug = f"hooked-crm-{secrets.token_hex(3)}"
    manifest = {**manifest, "name": slug, "display_name": slug, "webhooks": WEBHOOKS}
    async with connected(dsn) as conn:
        await register_deployed(conn, manifest=manifest, endpoint_url=dash.rig.crm_connector.url,
                                category="crm", vendor="tests")  # fmt: skip
    return slug


async def _deliver(url: str, secret: str, event: str, payload: dict) -> httpx.Response:
    """A delivery as GitHub's scheme signs it, to the install's public URL (no credential)."""
    raw = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event,
               "X-GitHub-Delivery": str(uuid.uuid4()),
               **sign("github", secret, raw, now=time.time())}  # fmt: skip
    async with httpx.AsyncClient(timeout=30) as provider:
        return await provider.post(url, content=raw, headers=headers)


async def _press(page: Page, name: str) -> None:
    """The button ``name`` in the Webhooks section, pressed from the keyboard."""
    await page.locator("#webhooks").get_by_role("button", name=name, exact=True).focus()
    await page.keyboard.press("Enter")


async def test_an_editor_sets_up_the_webhook_and_sees_every_refusal(
    dash, dsn, signed_in, net
) -> None:
    slug = await _hooked_connector(dash, dsn)
    seat = await signed_in(role=Role.editor, proxy={"server": net.server})
    iid = await install_crm(seat.api, dash.rig, slug)
    api = f"/api/v1/integrations/{iid}/webhook"
    page = seat.page
    section = page.locator("#webhooks")
    await seat.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await seat.goto(f"/integrations/{iid}")
    await settled(page)

    # what to do at the provider, the events in words; no URL yet
    await expect(section.get_by_role("heading", name="Webhooks", level=2)).to_be_visible()
    await expect(section.locator(".webhook-setup")).to_have_text(SETUP)
    await expect(section).to_contain_text(f"GitHub{CURLY}s way")
    events = section.get_by_role("table", name=f"The provider{CURLY}s events and what each does")
    rows = events.locator("tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0)).to_contain_text("contact.created, contact.updated")
    await expect(rows.nth(0)).to_contain_text(
        "Updates the stream contacts with the record it carries"
    )
    await expect(rows.nth(1)).to_contain_text("company.*")
    await expect(rows.nth(1)).to_contain_text("Reads the stream companies again")
    await expect(section.locator("#webhook-secret-state")).to_contain_text("Not set")
    await expect(section).to_contain_text("None: no delivery to this install has been refused.")
    await axe(page, "integration, webhooks before a URL")
    await shoot(page, "integration-webhooks-new")

    # the URL: made, shown as the API answers it, copied
    await _press(page, "Make the webhook URL")
    await expect(page.locator("#webhook-notice")).to_contain_text("The webhook URL was made.")
    url = (await seat.api.get(api)).json()["url"]
    assert url and url.startswith(dash.gateway + "/api/v1/integrations/webhooks/")
    await expect(section.locator("#webhook-url")).to_have_text(url)
    copy = section.locator("#webhook-copy")
    await expect(copy).to_have_accessible_name("Copy the URL")
    await expect(copy).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(copy).to_have_text("Copied")
    assert await page.evaluate("() => navigator.clipboard.readText()") == url

    # the secret: empty and too short refused at the field, nothing saved
    field = section.get_by_label(f"The provider{CURLY}s signing secret")
    await expect(field).to_have_attribute("type", "password")
    await _press(page, "Save the secret")
    await expect(field).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#webhook-secret-error")).to_have_text(
        f"Paste the provider{CURLY}s secret first."
    )
    await field.fill("too-short")
    await field.press("Enter")
    await expect(page.locator("#webhook-secret-error")).to_contain_text("16 characters")
    await expect(section.locator(".error-summary")).to_be_focused()
    await axe(page, "integration, webhook secret refused")
    assert (await seat.api.get(api)).json()["secret_set"] is False

    # made here and shown once, with what that means
    await _press(page, "Make one for me")
    once = section.get_by_role("group", name="The signing secret made for you")
    await expect(once.get_by_role("heading")).to_be_focused()
    await expect(once).to_contain_text("it will not be shown again")
    secret = (await once.locator("code").text_content()).strip()
    assert len(secret) >= 32
    await expect(section.locator("#webhook-secret-state")).to_contain_text("Set")
    shown = (await seat.api.get(api)).json()
    assert shown["secret_set"] is True and secret not in json.dumps(shown)
    await axe(page, "integration, webhook secret shown once")
    await shoot(page, "integration-webhooks-secret-once")
    await once.get_by_role("button", name="Copy").press("Enter")
    assert await page.evaluate("() => navigator.clipboard.readText()") == secret
    await once.get_by_role("button", name="Done, I stored it").press("Enter")
    await expect(once).to_have_count(0)
    await expect(section).to_be_focused()
    await expect(section).not_to_contain_text(secret)

    # one delivery taken (its record applied), one refused; both shown
    contact = {"id": f"c-{secrets.token_hex(3)}", "email": "ada@example.com"}
    r = await _deliver(url, secret, "contact.created", {"contact": contact})
    assert r.status_code == 200 and r.json()["records"] == 1, r.text
    r = await _deliver(url, "not-the-secret-at-all", "contact.updated", {"contact": contact})
    assert r.status_code == 401, r.text
    await _press(page, "Show the latest deliveries")
    stats = section.locator(".webhook-stats")
    await expect(stats.locator("div").nth(0)).to_have_text("Taken1")
    await expect(stats.locator("div").nth(1)).to_have_text("Refused1")
    refusals = section.get_by_role("table", name="The latest refused deliveries, newest first")
    await expect(refusals.locator("tbody tr")).to_have_count(1)
    row = refusals.locator("tbody tr").first
    await expect(row.locator("td").nth(1)).to_contain_text(
        "The signature does not match the secret"
    )
    await expect(row.locator("td").nth(1)).to_contain_text("answered HTTP 401")
    await expect(row.locator("td").nth(2)).to_have_text(
        "the signature does not match this install's secret"
    )
    await expect(row.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-"))
    await expect(section.get_by_role("button", name="Show the latest deliveries")).to_be_focused()
    await settled(page)
    await axe(page, "integration, webhook deliveries and refusals")
    await shoot(page, "integration-webhooks-deliveries")
    await page.get_by_role("button", name="Dark theme").click()
    await axe(page, "integration, webhook deliveries and refusals, dark")

    # a new URL: confirmed first (Escape keeps the old one), then the old one stops at once
    await _press(page, "New URL")
    dialog = page.get_by_role("dialog", name="Make a new webhook URL?")
    await expect(dialog).to_contain_text("stops working at once")
    await page.keyboard.press("Escape")
    await expect(section.get_by_role("button", name="New URL")).to_be_focused()
    assert (await seat.api.get(api)).json()["url"] == url
    await _press(page, "New URL")
    await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(dialog.get_by_role("button", name="Make a new URL")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#webhook-notice")).to_contain_text("The old one no longer works")
    new_url = (await seat.api.get(api)).json()["url"]
    assert new_url != url
    await expect(section.locator("#webhook-url")).to_have_text(new_url)
    r = await _deliver(url, secret, "contact.updated", {"contact": contact})
    assert r.status_code == 404, r.text

    # offline: refused, said, nothing kept to send later
    net.cut()
    try:
        await _press(page, "Make one for me")
        await (
            page.get_by_role("dialog", name="Replace the signing secret?")
            .get_by_role("button", name="Make a new secret")
            .click()
        )
        await expect(page.locator("#webhook-notice [role=alert]")).to_have_text(
            "No secret was made. The server could not be reached, and this change cannot wait"
            " on this device: it was not made. Try again when the connection returns."
        )
        await expect(page.locator("#webhook-offline")).to_have_text(
            "You are offline. The webhook URL and the signing secret can only be changed with"
            " the connection: these changes do not wait on this device."
        )
        await expect(page.locator("#offline-queue")).not_to_contain_text("wait")
        await axe(page, "integration, webhooks offline")
        await shoot(page, "integration-webhooks-offline")
    finally:
        net.restore()
    await _press(page, "Show the latest deliveries")  # reaches the server: online again
    await expect(page.locator("#webhook-offline")).to_be_hidden()
    r = await _deliver(new_url, secret, "contact.updated", {"contact": contact})
    assert r.status_code == 200, r.text  # the secret made offline never was
    # but the cut network's own (Chromium logs the request that found no connection)
    assert [e for e in seat.errors if "Failed to load resource: net::ERR_" not in e] == []


async def test_a_viewer_sees_the_webhook_and_changes_nothing(dash, dsn, signed_in) -> None:
    slug = await _hooked_connector(dash, dsn)
    seat = await signed_in(role=Role.viewer)  # seat.api: the tenant's admin key
    iid = await install_crm(seat.api, dash.rig, slug)
    api = f"/api/v1/integrations/{iid}/webhook"
    url = (await seat.api.post(api)).json()["url"]
    r = await seat.api.put(api + "/secret", json={"secret": "whsec_" + "b2" * 16})
    assert r.status_code == 200, r.text
    r = await _deliver(url, "another-secret-entirely", "company.updated", {"company": {}})
    assert r.status_code == 401, r.text

    page = seat.page
    await seat.goto(f"/integrations/{iid}")
    await settled(page)
    section = page.locator("#webhooks")
    await expect(section.locator("#webhook-url")).to_have_text(url)
    await expect(section.locator("#webhook-secret-state")).to_contain_text("Set")
    await expect(section.get_by_role("button", name="Copy the URL")).to_be_visible()
    for control in ("New URL", "Make one for me", "Save the secret", "Make the webhook URL"):
        await expect(section.get_by_role("button", name=control)).to_have_count(0)
    await expect(section.locator("input, form")).to_have_count(0)
    await expect(section.locator(".webhook-stats div").nth(1)).to_have_text("Refused1")
    await expect(section).to_contain_text("The signature does not match the secret")
    await axe(page, "integration, webhooks as a viewer")
    await shoot(page, "integration-webhooks-viewer")

    # a connector without webhooks: no such section
    plain = await installed(dash, seat)
    await seat.goto(f"/integrations/{plain}")
    await settled(page)
    await expect(page.locator("#sync-body")).not_to_be_empty()
    await expect(page.locator("#webhooks")).to_be_hidden()
    assert seat.errors == []
