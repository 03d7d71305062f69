"""The integration detail page in a real browser: the config form from the connector's JSON
Schema saves (and a refused value is shown at its field), a secret is write-only, check now,
disable and enable, uninstall through a confirmation dialog, dead letters retried and discarded,
a viewer sees no change buttons, an unknown install says so; axe on every state."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable

import httpx
from playwright.async_api import expect

from common.roles import Role
from marketplace_service.catalog.service import register_deployed
from tests.connector_service.rig import install_crm, register
from tests.dashboard.conftest import axe, installed, settled, shoot
from tests.support import connected


async def until(what: str, probe: Callable[[], Awaitable[bool]], within: float = 30) -> None:
    """Poll ``probe`` with a deadline (for state only the API shows)."""
    deadline = time.monotonic() + within
    while not await probe():
        assert time.monotonic() < deadline, f"still not {what}"
        await asyncio.sleep(0.2)


async def opened(seat, iid: str) -> None:
    await seat.goto(f"/integrations/{iid}")
    await settled(seat.page)


async def test_settings_save_refuse_and_keep_secrets(dash, signed_in) -> None:
    seat = await signed_in()
    iid = await installed(dash, seat)
    await opened(seat, iid)
    page = seat.page
    await expect(page.get_by_role("heading", level=1)).to_have_text(dash.slug)
    await expect(page.locator("#summary .badge").first).to_have_text(re.compile("active|pending"))
    await expect(page.get_by_role("link", name="Browse records")).to_have_attribute(
        "href", f"/integrations/{iid}/records"
    )
    await expect(page.get_by_role("link", name="Integrations", exact=True).last).to_be_visible()
    await axe(page, "integration")
    await shoot(page, "integration")

    # a plain field, saved through PATCH
    size = page.get_by_label("Page size")
    await size.fill("250")
    await page.get_by_role("button", name="Save settings").click()
    await expect(page.locator("#page-notice").get_by_text("Settings saved.")).to_be_visible()
    config = (await seat.api.get(f"/api/v1/integrations/{iid}")).json()["config"]
    assert config["page_size"] == 250 and config["base_url"] == dash.rig.crm.url

    # a value the schema refuses: shown at its field, with a summary that has focus
    await size.fill("5000")
    await page.get_by_role("button", name="Save settings").click()
    await expect(size).to_have_attribute("aria-invalid", "true")
    error = page.locator("#cfg-page_size-error")
    await expect(error).to_contain_text("1000")
    described = await size.get_attribute("aria-describedby")
    assert "cfg-page_size-error" in described.split()
    await expect(page.locator(".error-summary")).to_be_focused()
    await axe(page, "integration, settings refused")
    await shoot(page, "integration-settings-error")
    config = (await seat.api.get(f"/api/v1/integrations/{iid}")).json()["config"]
    assert config["page_size"] == 250

    # a secret: write-only, shown as set, never its value
    await size.fill("250")
    secret = page.get_by_label("API key")
    await expect(secret).to_have_value("")
    await expect(page.locator("#cfg-api_key-state")).to_contain_text("set")
    await secret.fill(dash.rig.crm_key)
    await page.get_by_role("button", name="Save settings").click()
    await expect(page.locator("#page-notice").get_by_text("Settings saved.")).to_be_visible()
    await expect(size).not_to_have_attribute("aria-invalid", "true")
    await expect(secret).to_have_value("")
    await expect(page.locator("#cfg-api_key-state .badge")).to_have_text("set")
    assert dash.rig.crm_key not in await page.content()
    fields = (await seat.api.get(f"/api/v1/integrations/{iid}/credentials")).json()
    assert fields["fields_set"] == ["api_key"]
    audit = (
        await seat.api.get("/api/v1/audit-logs", params={"target": f"integration:{iid}"})
    ).json()
    assert "integration.credentials_set" in {e["action"] for e in audit["items"]}

    # the dark theme
    await page.get_by_role("button", name="Dark theme").click()
    await page.reload()
    await settled(page)
    await expect(page.locator("#audit-body")).to_contain_text("integration.credentials_set")
    await axe(page, "integration, dark")
    await shoot(page, "integration-dark")
    assert seat.errors == []


async def test_check_disable_enable_and_uninstall(dash, signed_in) -> None:
    seat = await signed_in(role=Role.editor)
    iid = await installed(dash, seat)
    await opened(seat, iid)
    page = seat.page
    status = page.locator("#summary .badge").first
    await page.get_by_role("button", name="Check now").click()
    await expect(page.locator("#page-notice").get_by_text("Checked: active")).to_be_visible()
    await expect(status).to_have_text("active")
    await expect(page.get_by_role("button", name="Check now")).to_be_focused()
    await page.get_by_role("button", name="Disable").click()
    await expect(page.locator("#page-notice").get_by_text("Disabled:")).to_be_visible()
    await expect(status).to_have_text("disabled")
    await expect(page.get_by_role("button", name="Enable")).to_be_focused()
    item = (await seat.api.get(f"/api/v1/integrations/{iid}")).json()
    assert item["status"] == "disabled"
    await axe(page, "integration, disabled")
    await shoot(page, "integration-disabled")
    await page.get_by_role("button", name="Enable").click()
    await expect(page.get_by_role("button", name="Disable")).to_be_focused()
    await expect(status).to_have_text(re.compile("pending|active"))
    assert (await seat.api.get(f"/api/v1/integrations/{iid}")).json()["status"] != "disabled"
    # an editor does not read the audit trail: no section for it
    await expect(page.locator("#audit")).to_have_count(0)

    # uninstall: the dialog names the install; Cancel keeps it, and focus goes back
    uninstall = page.get_by_role("button", name="Uninstall")
    await uninstall.click()
    dialog = page.get_by_role("dialog", name=f"Uninstall {dash.slug}?")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    await axe(page, "integration, uninstall dialog")
    await shoot(page, "integration-uninstall-dialog")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    await expect(uninstall).to_be_focused()
    assert (await seat.api.get(f"/api/v1/integrations/{iid}")).status_code == 200
    await uninstall.click()
    await dialog.get_by_role("button", name=f"Uninstall {dash.slug}").click()
    await page.wait_for_url(seat.person.origin + "/")
    assert (await seat.api.get(f"/api/v1/integrations/{iid}")).status_code == 404
    assert seat.errors == []


async def test_dead_letters_retried_and_discarded(dash, signed_in) -> None:
    seat = await signed_in()
    iid = await installed(dash, seat)
    base = f"/api/v1/integrations/{iid}"
    r = await seat.api.patch(base, json={"sync_interval_seconds": 0})  # runs when asked
    assert r.status_code == 200, r.text
    crm = httpx.AsyncClient(
        base_url=dash.rig.crm.url, headers={"X-API-Key": dash.rig.crm_key}, timeout=30
    )
    try:
        keys = []
        for n in range(2):
            made = await crm.post(
                "/v1/contacts", json={"email": f"dl{n}-{uuid.uuid4().hex[:8]}@example.com"}
            )
            assert made.status_code == 201, made.text
            keys.append(made.json()["id"])
        await opened(seat, iid)
        page = seat.page
        # the first sync, from the page
        await page.get_by_role("button", name="Run sync now").click()
        await expect(page.locator("#sync-body table tbody tr").first).to_contain_text(
            "succeeded", timeout=60_000
        )
        # the CRM refuses both changes for good
        r = await crm.post("/admin/faults", json={
            "paths": [f"/v1/contacts/{k}" for k in keys], "methods": ["PUT", "PATCH"],
            "status": 400, "count": 2})  # fmt: skip
        assert r.status_code == 201, r.text
        for key in keys:
            r = await seat.api.patch(f"{base}/records/contacts/{key}", json={"phone": "refused"})
            assert r.status_code == 200, r.text

        async def dead() -> bool:
            return (await seat.api.get(f"{base}/sync/status")).json()["dead_letters"] == 2

        await until("dead-lettered", dead)
    finally:
        await crm.aclose()
    await page.reload()
    await settled(page)
    rows = page.locator("#dead-body tbody tr")
    await expect(rows).to_have_count(2)
    await axe(page, "integration, dead letters")
    await shoot(page, "integration-dead-letters")
    # retried (the faults are spent): it leaves the list
    await page.get_by_role("button", name=f"Retry contacts {keys[0]}").click()
    await expect(rows).to_have_count(1)
    # discarded, after the confirmation
    await page.get_by_role("button", name=f"Discard contacts {keys[1]}").click()
    dialog = page.get_by_role("dialog", name=f"Discard the change to contacts {keys[1]}?")
    await expect(dialog).to_be_visible()
    await axe(page, "integration, discard dialog")
    await dialog.get_by_role("button", name="Discard the change").click()
    await expect(page.get_by_role("heading", name="No dead letters")).to_be_visible()
    await expect(page.locator("#dead-heading")).to_be_focused()
    letters = (await seat.api.get(f"{base}/sync/dead-letters")).json()["items"]
    assert letters == []
    assert seat.errors == []


async def test_a_viewer_sees_no_change_buttons(dash, signed_in) -> None:
    admin = await signed_in()
    iid = await installed(dash, admin)
    seat = await signed_in(role=Role.viewer, tenant=admin.tenant)
    await opened(seat, iid)
    page = seat.page
    await expect(page.get_by_role("heading", level=1)).to_have_text(dash.slug)
    await expect(page.get_by_role("link", name="Browse records")).to_be_visible()
    await expect(page.locator("#settings")).to_contain_text("Demo CRM URL")
    await expect(page.locator("#settings .badge")).to_have_text("set")
    await expect(page.locator("main button:visible")).to_have_count(0)
    await expect(page.locator("main input, main select, main textarea")).to_have_count(0)
    await expect(page.locator("#audit")).to_have_count(0)
    await axe(page, "integration, viewer")
    await shoot(page, "integration-viewer")
    assert seat.errors == []


async def test_an_unknown_integration_says_so(signed_in) -> None:
    seat = await signed_in()
    await opened(seat, str(uuid.uuid4()))
    page = seat.page
    await expect(page.get_by_role("heading", level=1)).to_have_text("Integration not found")
    await expect(page.get_by_role("link", name="See all integrations")).to_have_attribute(
        "href", "/"
    )
    await axe(page, "integration, not found")
    await shoot(page, "integration-not-found")
    assert seat.errors == []


async def test_an_upgrade_previewed_then_made(dash, signed_in, dsn) -> None:
    """A catalog entry of its own (the shared one stays at 1.0.0 for the other tests)."""
    slug = await register(dsn, dash.rig.crm_connector.url)
    seat = await signed_in()
    iid = await install_crm(seat.api, dash.rig, slug)
    manifest = (await seat.api.get(f"/api/v1/marketplace/connectors/{slug}")).json()["manifest"]
    schema = manifest["config_schema"]
    region = {"type": "string", "enum": ["eu", "us"], "title": "Region"}
    manifest = {**manifest, "version": "1.1.0",
                "config_schema": {**schema, "properties": {**schema["properties"], "region": region}}}  # fmt: skip
    async with connected(dsn) as conn:
        await register_deployed(conn, manifest=manifest, endpoint_url=dash.rig.crm_connector.url,
                                category="crm", vendor="tests")  # fmt: skip
    await opened(seat, iid)
    page = seat.page
    section = page.locator("#upgrade")
    await expect(section).to_contain_text("Version 1.1.0 is available")
    await expect(section).to_contain_text("New settings: region")
    # the form is the version the install runs: 1.0.0 has no region
    await expect(page.get_by_label("Region")).to_have_count(0)
    await axe(page, "integration, upgrade available")
    await shoot(page, "integration-upgrade")
    await section.get_by_role("button", name="Upgrade to 1.1.0").click()
    dialog = page.get_by_role("dialog", name="Upgrade to version 1.1.0?")
    await dialog.get_by_role("button", name="Upgrade to 1.1.0").click()
    await expect(section).to_contain_text("Version 1.1.0 is the newest published version.")
    await expect(page.locator("#subtitle")).to_contain_text("version 1.1.0")
    await expect(page.get_by_label("Region")).to_be_visible()
    assert (await seat.api.get(f"/api/v1/integrations/{iid}")).json()["version"] == "1.1.0"
    assert seat.errors == []
