"""Session time limits in the dashboard (WCAG 2.2.5 and 2.2.6): the limit is stated, a session
about to reach it is warned of, and a session that ends under a person's hands loses nothing:
what they typed comes back once they are signed in again. The tenant switcher."""

from __future__ import annotations

import httpx
from playwright.async_api import expect

from common.roles import Role
from gateway.sessions import cookies
from gateway.sessions import service as sessions
from tests.dashboard.conftest import axe, settled, shoot
from tests.people import TIMEOUTS, person
from tests.support import connected, make_tenant


async def test_input_survives_an_ended_session(dash, signed_in, dsn) -> None:
    seat = await signed_in()
    page = seat.page
    await seat.goto("/settings")
    industry = page.get_by_label("Industry")
    await expect(page.locator("#profile-form")).not_to_have_attribute("aria-busy", "true")
    # every section has loaded (a read still under way when the session ends would open the
    # dialog before the save does; the service worker's first install slows them down)
    await settled(page)
    await page.wait_for_load_state("networkidle")
    await industry.fill("robotics")
    # the session ends elsewhere (signed out on another device, or an admin ended it)
    async with httpx.AsyncClient(base_url=dash.gateway) as client:
        r = await client.delete(
            f"/api/v1/me/sessions/{seat.person.session_id}", headers=seat.person.headers
        )
        assert r.status_code == 200, r.text
    await page.get_by_role("button", name="Save profile").click()
    dialog = page.get_by_role("dialog", name="Your session has ended")
    await expect(dialog).to_be_visible()
    again = dialog.get_by_role("link", name="Sign in again")
    await expect(again).to_be_focused()
    await expect(again).to_have_attribute("href", "/auth/sign-in?return_to=%2Fsettings")
    await axe(page, "session ended dialog")
    await shoot(page, "session-ended")
    # signed in again (a new session of the same person), back on the page: the input is back,
    # and nothing was saved meanwhile
    async with connected(dsn) as conn:
        issued = await sessions.start(
            conn, user_id=seat.person.user_id, tenant_id=seat.tenant.tenant_id, role="admin",
            provider="test", issuer="https://idp.test.invalid", timeouts=TIMEOUTS,
        )  # fmt: skip
    await seat.context.add_cookies([{
        "name": cookies.SESSION, "value": issued.secret, "domain": "127.0.0.1", "path": "/",
        "secure": True, "httpOnly": True, "sameSite": "Lax",
    }])  # fmt: skip
    await seat.goto("/settings")
    await expect(page.get_by_label("Industry")).to_have_value("robotics")
    await expect(page.locator("#restored-note")).to_be_visible()
    profile = (await seat.api.get("/api/v1/tenant")).json()
    assert profile["industry"] != "robotics"
    await page.get_by_role("button", name="Save profile").click()
    await expect(page.locator("#profile-status")).to_contain_text("saved")
    assert (await seat.api.get("/api/v1/tenant")).json()["industry"] == "robotics"
    assert seat.errors == []


async def test_a_session_near_its_limit_is_warned_of(dash, signed_in, dsn) -> None:
    seat = await signed_in()
    page = seat.page
    await seat.goto("/")
    note = page.locator("#session-note")
    await expect(note).to_contain_text("Your session ends after 30 minutes without activity")
    # the session's absolute limit comes within the two minutes' warning
    async with connected(dsn) as conn:
        await conn.execute(
            "UPDATE sessions SET absolute_expires_at = now() + interval '90 seconds' WHERE id = $1",
            seat.person.session_id,
        )
    await page.reload()
    dialog = page.get_by_role("dialog", name="Your session is ending")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("Your session reaches its time limit at")
    await expect(dialog).to_contain_text("what you typed is kept")
    await expect(dialog.get_by_role("button", name="Stay signed in")).to_be_hidden()
    await axe(page, "session ending dialog")
    await shoot(page, "session-ending")
    assert seat.errors == []


async def test_the_tenant_switcher(dash, signed_in, dsn) -> None:
    first = await make_tenant(dsn, role=Role.admin)
    second = await make_tenant(dsn, role=Role.admin)
    who = await person(dash.gateway, dsn, first, "admin", memberships={second.tenant_id: "viewer"})
    seat = await signed_in(tenant=first, who=who)
    page = seat.page
    await seat.goto("/")
    switcher = page.get_by_label("Tenant")
    await expect(switcher).to_have_value(first.slug)
    await axe(page, "tenant switcher")
    await switcher.select_option(second.slug)
    await page.get_by_role("button", name="Switch tenant").click()
    await expect(page.locator("#session-note")).to_contain_text(f"in {second.slug} as viewer")
    await expect(page.get_by_label("Tenant")).to_have_value(second.slug)
    # a viewer's overview offers no install
    await expect(page.get_by_role("link", name="Add an integration")).to_have_count(0)
    assert seat.errors == []
