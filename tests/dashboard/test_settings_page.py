"""The settings page: an API key shown once, working, then revoked and refused; an invitation
sent and revoked; a member's role changed; the tenant profile saved and read back, and a 422 at
its field; another session of the same person ended; an editor's read-only view. axe on every
state (dialog open, errors shown, dark theme) and screenshots."""

from __future__ import annotations

import httpx
from playwright.async_api import expect

from common.roles import Role
from gateway.sessions import cookies
from gateway.sessions import service as sessions
from tests.dashboard.conftest import axe, settled, shoot
from tests.people import TIMEOUTS, person
from tests.support import connected


async def test_an_api_key_is_shown_once_works_and_is_revoked(dash, signed_in) -> None:
    seat = await signed_in()
    page = seat.page
    await seat.goto("/settings")
    await expect(page.get_by_role("heading", level=1, name="Settings")).to_be_visible()
    keys = page.locator("#api-keys-list tbody tr")
    await expect(keys).to_have_count(1)  # the tenant's own test key
    await settled(page)
    await axe(page, "settings")
    await shoot(page, "settings")

    await page.locator("#key-form").get_by_label("Name").fill("deploy bot")
    await page.locator("#key-role").select_option("viewer")
    await page.get_by_role("button", name="Create key").click()
    box = page.get_by_role("group", name="Your new key “deploy bot”")
    await expect(box).to_contain_text("it will not be shown again")
    await expect(box.get_by_role("heading")).to_be_focused()
    secret = await box.locator(".secret-value").inner_text()
    await expect(keys).to_have_count(2)
    await axe(page, "settings, new key shown once")
    await shoot(page, "settings-new-key")
    async with httpx.AsyncClient(base_url=dash.gateway) as client:
        bearer = {"Authorization": f"Bearer {secret}"}
        r = await client.get("/api/v1/me", headers=bearer)
        assert r.status_code == 200 and r.json()["role"] == "viewer", r.text

        await page.reload()
        await expect(keys).to_have_count(2)
        assert secret not in await page.content()
        row = keys.filter(has_text="deploy bot")
        await expect(row).to_contain_text(secret[:8])  # its prefix, not more
        await row.get_by_role("button", name="Revoke key “deploy bot”").click()
        dialog = page.get_by_role("dialog", name="Revoke the key “deploy bot”?")
        await expect(dialog).to_be_visible()
        await axe(page, "settings, revoke dialog")
        await shoot(page, "settings-revoke-dialog")
        await dialog.get_by_role("button", name="Revoke key").click()
        await expect(dialog).to_be_hidden()
        await expect(keys).to_have_count(1)
        await expect(page.locator("#api-keys")).to_be_focused()
        r = await client.get("/api/v1/me", headers=bearer)
        assert r.status_code == 401, r.text
    # the audit log tells what was done, by whom (by name)
    await seat.goto("/audit?action_prefix=api_key.")
    entries = page.locator("#entries tbody tr")
    await expect(entries.first).to_contain_text("api_key.revoked")
    await expect(entries.first).to_contain_text(seat.person.subject)  # the member's name
    await expect(entries.nth(1)).to_contain_text("api_key.created")
    await expect(entries.nth(1)).to_contain_text("deploy bot")  # in its details
    assert seat.errors == []


async def test_members_and_invitations(dash, dsn, signed_in) -> None:
    seat = await signed_in()
    page = seat.page
    other = await person(dash.gateway, dsn, seat.tenant, "viewer", email="grace@example.com")
    await seat.goto("/settings")
    members = page.locator("#members-list tbody tr")
    await expect(members).to_have_count(2)
    await expect(members.filter(has_text="you")).to_have_count(1)

    # a role changed
    grace = members.filter(has_text="grace@example.com")
    await grace.get_by_label(f"Role of {other.subject}").select_option("editor")
    await grace.get_by_role("button", name=f"Change role of {other.subject}").click()
    await expect(page.locator(f"#role-{other.user_id}")).to_be_focused()
    listed = (await seat.api.get("/api/v1/members")).json()["items"]
    assert {m["email"]: m["role"] for m in listed}["grace@example.com"] == "editor"

    # an invitation sent, shown pending, revoked
    await page.get_by_label("Email").fill("ada@example.com")
    await page.locator("#invite-role").select_option("editor")
    await page.get_by_role("button", name="Send invitation").click()
    box = page.get_by_role("group", name="Invitation link for ada@example.com")
    await expect(box).to_contain_text("/auth/invitations/")
    pending = page.locator("#invitations-list tbody tr")
    await expect(pending).to_have_count(1)
    await expect(pending).to_contain_text("ada@example.com")
    await expect(pending).to_contain_text("Editor")
    await settled(page)
    await axe(page, "settings, invitation sent")
    await shoot(page, "settings-invited")
    await pending.get_by_role("button", name="Revoke the invitation of ada@example.com").click()
    dialog = page.get_by_role("dialog", name="Revoke the invitation of ada@example.com?")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(pending).to_have_count(1)  # cancelled: nothing happened
    await expect(
        pending.get_by_role("button", name="Revoke the invitation of ada@example.com")
    ).to_be_focused()
    await pending.get_by_role("button", name="Revoke the invitation of ada@example.com").click()
    await dialog.get_by_role("button", name="Revoke invitation").click()
    await expect(page.get_by_text("No pending invitations.")).to_be_visible()
    r = await seat.api.get("/api/v1/invitations")
    assert [(i["email"], i["status"]) for i in r.json()["items"]] == [
        ("ada@example.com", "revoked")
    ]

    # a member removed, confirmed
    await grace.get_by_role("button", name=f"Remove {other.subject}").click()
    await page.get_by_role("dialog").get_by_role("button", name="Remove member").click()
    await expect(members).to_have_count(1)
    listed = (await seat.api.get("/api/v1/members")).json()["items"]
    assert [m["email"] for m in listed] == [seat.person.email]
    assert seat.errors == []


async def test_the_profile_is_saved_and_its_errors_shown_at_fields(signed_in) -> None:
    seat = await signed_in()
    page = seat.page
    await seat.goto("/settings")
    await expect(page.locator("#profile-form")).not_to_have_attribute("aria-busy", "true")
    await page.get_by_label("Industry").fill("Logistics")
    await page.get_by_label("Employees").fill("120")
    await page.get_by_label("Description").fill("Trucks, warehouses and a CRM we outgrew.")
    await page.get_by_role("button", name="Save profile").click()
    saved = page.locator("#profile-status").get_by_text("The profile was saved.")
    await expect(saved).to_be_visible()
    await expect(page.get_by_label("Industry")).to_have_value("logistics")  # as stored
    tenant = (await seat.api.get("/api/v1/tenant")).json()
    assert (tenant["industry"], tenant["size"], tenant["description"]) == (
        "logistics", 120, "Trucks, warehouses and a CRM we outgrew.",
    )  # fmt: skip

    # the API's 422: at the field, in the summary (focused), nothing saved
    await page.get_by_label("Employees").fill("0")
    await page.locator("#profile-form").get_by_label("Name").fill("")
    await page.get_by_role("button", name="Save profile").click()
    await expect(saved).to_have_count(0)
    size = page.get_by_label("Employees")
    await expect(size).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#profile-size-error")).to_contain_text("greater than 0")
    await expect(size).to_have_accessible_description(
        "How many people work there; leave empty if you would rather not say."
        " Input should be greater than 0"
    )
    await expect(page.locator("#profile-name")).to_have_attribute("aria-invalid", "true")
    summary = page.locator(".error-summary")
    await expect(summary).to_be_focused()
    await expect(summary.get_by_role("link")).to_have_count(2)
    await axe(page, "settings, profile errors")
    await shoot(page, "settings-profile-errors")
    await page.get_by_role("button", name="Dark theme").click()
    await axe(page, "settings, profile errors, dark")
    await shoot(page, "settings-profile-errors-dark")
    assert (await seat.api.get("/api/v1/tenant")).json()["size"] == 120
    await summary.get_by_role("link", name="Employees: Input should be greater than 0").click()
    await expect(size).to_be_focused()
    await size.fill("150")
    await page.locator("#profile-form").get_by_label("Name").fill("Acme Freight")
    await page.get_by_role("button", name="Save profile").click()
    await expect(saved).to_be_visible()
    await expect(summary).to_have_count(0)
    await expect(size).not_to_have_attribute("aria-invalid", "true")
    tenant = (await seat.api.get("/api/v1/tenant")).json()
    assert (tenant["name"], tenant["size"]) == ("Acme Freight", 150)
    assert seat.errors == []


async def test_another_session_of_mine_is_ended(dash, dsn, signed_in) -> None:
    seat = await signed_in()
    page = seat.page
    async with connected(dsn) as conn, conn.transaction():
        elsewhere = await sessions.start(
            conn, user_id=seat.person.user_id, tenant_id=seat.tenant.tenant_id, role="admin",
            provider="test", issuer="https://idp.test.invalid", timeouts=TIMEOUTS,
            user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1",
            client_address="192.0.2.7",
        )  # fmt: skip
    await seat.goto("/settings#sessions")
    items = page.locator("#sessions-list li.session")
    await expect(items).to_have_count(2)
    mine = items.filter(has_text="This device")
    await expect(mine).to_have_count(1)
    await expect(mine.get_by_role("button")).to_have_count(0)
    phone = items.filter(has_text="Safari on iOS")
    await expect(phone).to_contain_text("192.0.2.7")
    await settled(page)
    await axe(page, "settings, sessions")
    await phone.get_by_role("button", name="End session").click()
    dialog = page.get_by_role("dialog", name="End the session on Safari on iOS?")
    await expect(dialog).to_be_visible()
    await axe(page, "settings, end session dialog")
    await dialog.get_by_role("button", name="End session").click()
    await expect(items).to_have_count(1)
    async with httpx.AsyncClient(base_url=dash.gateway) as client:
        cookie = {"cookie": f"{cookies.SESSION}={elsewhere.secret}"}
        assert (await client.get("/api/v1/me", headers=cookie)).status_code == 401
        assert (await client.get("/api/v1/me", headers=seat.person.cookie)).status_code == 200
    assert seat.errors == []


async def test_an_editor_reads_the_profile_and_members(signed_in) -> None:
    seat = await signed_in(role=Role.editor)
    page = seat.page
    await seat.goto("/settings")
    await expect(page.locator("#members-list tbody tr")).to_have_count(1)
    await expect(page.get_by_label("Industry")).to_have_attribute("readonly", "")
    await expect(page.get_by_role("button", name="Save profile")).to_have_count(0)
    await expect(page.get_by_text("Only admins change the profile.")).to_be_visible()
    await expect(page.get_by_role("heading", name="API keys")).to_have_count(0)
    await expect(page.get_by_role("heading", name="Invitations")).to_have_count(0)
    await expect(page.locator("#members-list").get_by_role("button")).to_have_count(0)
    await settled(page)
    await axe(page, "settings, editor")
    await page.get_by_role("button", name="Dark theme").click()
    await axe(page, "settings, editor, dark")
    await shoot(page, "settings-editor-dark")
    assert seat.errors == []
