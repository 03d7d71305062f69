"""A connector's reference on its page (issue 18, part 4): the settings an install fills in,
each stream with its fields in a table (collapsed when long, opened and closed by a button in
its heading), the actions' input and output, the provider's webhooks when the connector uses
them, and the whole reference downloaded as Markdown; axe and screenshots (1280 and 360 px)."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import httpx
from playwright.async_api import expect

from common.roles import Role
from marketplace_service.catalog.service import register_deployed
from tests.dashboard.conftest import axe, settled, shoot
from tests.support import connected

APOSTROPHE = "\u2019"  # the dashboard's typographic apostrophe
WEBHOOKS = {
    "signature": {"scheme": "stripe", "tolerance_seconds": 120},
    "setup": "Add an endpoint with this install's URL, then paste its signing secret here.",
    "events": [
        {"types": ["contact.created", "contact.deleted"], "stream": "contacts",
         "record": "data.object", "deleted": {"when": "type == 'contact.deleted'"}},
        {"types": ["company.*"], "pull": "companies"},
    ],
}  # fmt: skip


async def _with_webhooks(dash, dsn: str) -> str:
    """The demo CRM's connector in the catalog once more, its manifest declaring webhooks."""
    async with httpx.AsyncClient() as client:
        manifest = (await client.get(dash.rig.crm_connector.url + "/manifest")).json()
    slug = f"hooked-crm-{secrets.token_hex(3)}"
    manifest |= {"name": slug, "display_name": f"Hooked CRM {slug[-6:]}", "webhooks": WEBHOOKS}
    async with connected(dsn) as conn:
        assert await register_deployed(conn, manifest=manifest, endpoint_url=dash.rig.crm_connector.url,
                                       category="crm", vendor="tests") is None  # fmt: skip
    return slug


async def test_a_platform_connectors_reference(dash, signed_in) -> None:
    seat = await signed_in(role=Role.viewer)
    page = seat.page
    await seat.goto("/marketplace/github")
    await settled(page)

    settings = page.locator("#settings")
    await expect(settings.get_by_role("heading", level=2)).to_have_text("Settings you fill in")
    owner = settings.get_by_role("row").filter(has=page.locator("code", has_text="owner"))
    await expect(owner.get_by_role("cell").first).to_contain_text("Owner")  # its title
    await expect(owner.get_by_role("cell")).to_have_text(
        [re.compile("^owner"), "string", "Yes", "No", "—", re.compile("^The user or organisation")]
    )

    # a stream of many fields starts collapsed; its heading's button opens it
    issues = page.get_by_role("button", name="issues", exact=False).first
    await expect(issues).to_have_attribute("aria-expanded", "false")
    fields = page.get_by_role("table", name="Fields of issues")
    await expect(fields).to_be_hidden()
    await issues.click()
    await expect(issues).to_have_attribute("aria-expanded", "true")
    await expect(fields).to_be_visible()
    login = fields.get_by_role("row").filter(has=page.locator("code", has_text="user.login"))
    await expect(login.get_by_role("cell")).to_have_text(["user.login", "string", "No", "No", "—"])
    closed = fields.get_by_role("row").filter(has=page.locator("code", has_text="closed_at"))
    await expect(closed.get_by_role("cell").nth(2)).to_have_text("Yes")  # nullable
    stream = page.locator("#stream-issues")
    await expect(stream.locator("dl")).to_contain_text(
        "ReadIncremental, from where the last sync ended, by updated_at"
    )
    await expect(stream.locator("dl")).to_contain_text("WritesNo: read only")
    await expect(page.locator("#access")).to_contain_text("repo")  # the OAuth scope
    actions = page.locator("#actions")
    await expect(actions.get_by_role("heading", level=3)).not_to_have_count(0)
    await expect(actions.get_by_role("heading", name="Input").first).to_be_visible()
    await axe(page, "connector reference, a stream open")
    await shoot(page, "connector-reference")

    await page.get_by_role("button", name="Hide every stream").click()
    await expect(fields).to_be_hidden()
    await page.get_by_role("button", name="Show every stream").click()
    await expect(page.get_by_role("table", name="Fields of pull_requests")).to_be_visible()
    await page.get_by_role("button", name="Dark theme").click()
    await axe(page, "connector reference, every stream open, dark")

    # the same reference as Markdown, downloaded
    async with page.expect_download() as downloading:
        await page.get_by_role("button", name="Download the reference (Markdown)").click()
    download = await downloading.value
    assert download.suggested_filename == "github-reference.md"
    markdown = (
        await seat.api.get(
            "/api/v1/marketplace/connectors/github/reference", headers={"accept": "text/markdown"}
        )
    ).text
    saved = Path(await download.path()).read_text(encoding="utf-8")  # noqa: ASYNC240 - small file
    assert saved == markdown
    assert seat.errors == []


async def test_a_hand_written_connectors_reference_with_webhooks(dash, dsn, signed_in) -> None:
    slug = await _with_webhooks(dash, dsn)
    seat = await signed_in(role=Role.viewer)
    page = seat.page
    await seat.goto(f"/marketplace/{slug}")
    await settled(page)
    secret = (
        page.locator("#settings")
        .get_by_role("row")
        .filter(has=page.locator("code", has_text="api_key"))
    )
    await expect(secret.get_by_role("cell").nth(3)).to_have_text("Yes")  # secret

    # few fields: open from the start; a hand-written connector does not say which writes
    contacts = page.locator("#stream-contacts")
    await expect(contacts.get_by_role("button")).to_have_attribute("aria-expanded", "true")
    await expect(contacts.locator("dl")).to_contain_text("WritesYes (which writes is not declared)")
    await expect(contacts.locator("dl")).to_contain_text(
        f"Deletions at the providerSeen through the provider{APOSTROPHE}s webhooks"
    )
    await expect(page.locator("#stream-companies dl")).to_contain_text(
        "Deletions at the providerNot declared"
    )
    action = page.locator("#action-create_contact")
    await expect(action).to_contain_text("Not safe to repeat")
    email = (
        action.get_by_role("table", name="Input of create_contact")
        .get_by_role("row")
        .filter(has=page.locator("code", has_text="email"))
    )
    await expect(email.get_by_role("cell").nth(3)).to_have_text("Yes")  # required

    hooks = page.locator("#webhooks")
    await expect(hooks.get_by_role("heading", level=2)).to_have_text("Webhooks")
    await expect(hooks).to_contain_text("Deliveries signed more than 120 seconds ago are refused")
    rows = hooks.get_by_role("table", name="Webhook events").get_by_role("row")
    await expect(rows.nth(1).get_by_role("cell")).to_have_text(
        [
            "contact.created, contact.deleted",
            "contacts",
            "Carries the record, or says it was deleted",
        ]
    )
    await expect(rows.nth(2).get_by_role("cell")).to_have_text(
        ["company.*", "companies", "Starts a sync of companies"]
    )
    await expect(hooks).to_contain_text("paste its signing secret here")
    await axe(page, "connector reference with webhooks")
    await shoot(page, "connector-reference-webhooks")
    await page.get_by_role("button", name="Dark theme").click()
    await axe(page, "connector reference with webhooks, dark")

    await seat.goto(f"/marketplace/{dash.slug}")  # the same connector without webhooks
    await settled(page)
    await expect(page.locator("#stream-contacts")).to_be_visible()
    await expect(page.locator("#webhooks")).to_have_count(0)
    assert seat.errors == []
