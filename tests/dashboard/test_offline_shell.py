"""The dashboard without a connection (issue 16, part 1): the service worker keeps the pages a
person opened, their data and the dashboard's files; with the network cut (tests/netcut.py, a
proxy between this browser and the gateway) those pages open with what they last showed, the
notice above them says so and how old it is, and a page never opened says it is not on this
device and lists those that are. When the network returns, the notice goes by itself and fresh
answers replace the copies. Signing out drops every copy."""

from __future__ import annotations

import asyncio
import re
import secrets
from datetime import UTC, datetime
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from playwright.async_api import Page, expect

from common.roles import Role
from gateway.sessions import cookies
from tests.dashboard.conftest import Dash, Seat, axe, installed, settled, shoot
from tests.dashboard.offline import worker_ready
from tests.dashboard.test_records_page import synced
from tests.people import person
from tests.support import make_tenant

pytestmark = pytest.mark.timeout(90)

# Chromium logs what the cut network refuses (a resource or WebSocket that failed, the
# worker's 503 for what it has no copy of): expected here, and only while the network is cut.
CUT = re.compile(
    r"Failed to load resource: (net::ERR_|the server responded with a status of 503)"
    r"|WebSocket connection to .* failed"
)


def unexpected(seat: Seat) -> list[str]:
    return [e for e in seat.errors if not CUT.search(e)]


async def kept(page: Page) -> dict[str, list[str]]:
    """The worker's caches and the URLs (path and query) each holds, as the page sees them."""
    return await page.evaluate(
        """async () => {
            const out = {}
            for (const name of await caches.keys()) {
                const keys = await (await caches.open(name)).keys()
                out[name] = keys.map((r) => { const u = new URL(r.url); return u.pathname + u.search })
            }
            return out
        }"""
    )


async def integration_kept(seat: Seat, iid: str) -> dict[str, list[str]]:
    """The worker in control, then the integration's page opened (and so kept); the caches."""
    await seat.goto("/")
    await worker_ready(seat.page)
    await seat.goto(f"/integrations/{iid}")
    await settled(seat.page)
    held = await kept(seat.page)
    assert f"/integrations/{iid}" in held["seedos-pages-v1"]
    return held


async def saved_at(page: Page, cache: str, path: str) -> str | None:
    return await page.evaluate(
        """async ([cache, path]) => {
            const copy = await (await caches.open(cache)).match(path)
            return copy ? copy.headers.get('x-seedos-cached-at') : null
        }""",
        [cache, path],
    )


async def offline_notice(page: Page) -> None:
    notice = page.locator("#connection")
    await expect(notice).to_be_visible()
    await expect(notice).to_contain_text("You are offline.")
    await expect(notice).to_contain_text("This page shows what this device saw")


@pytest.fixture
async def crm_install(dash: Dash, signed_in, net):
    """A seat behind the cuttable network, a contact of its own in the demo CRM, synced into a
    new install of it: (seat, install id, contact)."""
    seat = await signed_in(proxy={"server": net.server})
    tag = secrets.token_hex(4)
    async with httpx.AsyncClient(
        base_url=dash.rig.crm.url, headers={"X-API-Key": dash.rig.crm_key}, timeout=30
    ) as crm:
        r = await crm.post("/v1/contacts", json={
            "email": f"off-{tag}@example.com", "first_name": "Offline", "last_name": f"L{tag}",
        })  # fmt: skip
        assert r.status_code == 201, r.text
    iid = await installed(dash, seat)
    await seat.api.patch(f"/api/v1/integrations/{iid}", json={"sync_interval_seconds": 0})
    await synced(seat, iid)
    return seat, iid, r.json()


async def test_opened_pages_open_offline_with_their_data(crm_install, net) -> None:
    seat, iid, contact = crm_install
    page = seat.page
    records = f"/integrations/{iid}/records?stream=contacts&q={contact['last_name']}"
    name = (await seat.api.get(f"/api/v1/integrations/{iid}")).json()["connector_name"]

    async def overview() -> None:
        await expect(page.get_by_role("link", name=name)).to_be_visible()

    async def integration() -> None:
        await expect(page.get_by_role("heading", level=1)).to_contain_text(name)

    async def record_list() -> None:
        await expect(page.get_by_role("row", name=contact["id"])).to_be_visible()

    visits = [("/", overview), (f"/integrations/{iid}", integration), (records, record_list)]
    await seat.goto("/")
    await worker_ready(page)  # from now on what the pages load is kept
    for path, shows in visits:
        await seat.goto(path)
        await shows()
        await settled(page)
    held = await kept(page)
    assert set(held["seedos-pages-v1"]) == {"/", f"/integrations/{iid}", records}
    assert f"/api/v1/integrations/{iid}" in held["seedos-api-v1"]
    assert not any("state-vector" in url for url in held["seedos-api-v1"])  # binary: never kept
    first_saved = await saved_at(page, "seedos-api-v1", f"/api/v1/integrations/{iid}")

    net.cut()
    for path, shows in visits:
        await seat.goto(path)
        await shows()
        await offline_notice(page)
    await page.reload()
    await record_list()
    await offline_notice(page)
    await axe(page, "records offline")
    await shoot(page, "offline records")
    # the records page's other stream: the same page's copy, and the worker's 503 for its data
    await seat.goto(f"/integrations/{iid}/records?stream=companies")
    await expect(page.locator("#connection")).to_contain_text("You are offline.")
    await seat.goto(f"/integrations/{iid}")
    await integration()
    await axe(page, "integration offline")
    await shoot(page, "offline integration")

    # a page never opened here: the worker says so and lists those it has
    await seat.goto("/settings")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "This page is not available offline"
    )
    opened = page.get_by_role("list").get_by_role("link")
    await expect(opened).to_have_count(3)
    await expect(page.get_by_role("link", name="Integrations (/)", exact=True)).to_be_visible()
    await expect(page.locator("#connection")).to_contain_text("You are offline.")
    await axe(page, "page not kept offline")
    await shoot(page, "offline page not kept")
    await page.get_by_role("link", name=f"Integration (/integrations/{iid})", exact=True).click()
    await integration()

    net.restore()
    # the probe finds the gateway again: the notice goes by itself
    await expect(page.locator("#connection")).to_be_hidden(timeout=20_000)
    await page.reload()
    await integration()
    await expect(page.locator("#connection")).to_be_hidden()
    assert await saved_at(page, "seedos-api-v1", f"/api/v1/integrations/{iid}") > first_saved
    assert unexpected(seat) == []


async def test_signing_out_drops_the_copies(crm_install, net) -> None:
    seat, iid, _ = crm_install
    page = seat.page
    held = await integration_kept(seat, iid)
    assert held["seedos-api-v1"]

    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(re.compile(r"/auth/"))
    held = await kept(page)
    assert not held.get("seedos-pages-v1") and not held.get("seedos-api-v1"), held
    assert any(name.startswith("seedos-assets-") for name in held)  # nobody's: kept
    # the session is over at the gateway too
    async with httpx.AsyncClient(base_url=seat.person.origin) as client:
        assert (await client.get("/api/v1/me", headers=seat.person.cookie)).status_code == 401

    net.cut()
    await seat.goto(f"/integrations/{iid}")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "This page is not available offline"
    )
    await expect(page.get_by_text("No page has been opened on this device yet.")).to_be_visible()
    assert unexpected(seat) == []


async def test_another_person_in_the_same_browser_finds_no_copies(
    crm_install, dash: Dash, dsn: str
) -> None:
    seat, iid, _ = crm_install
    page = seat.page
    await integration_kept(seat, iid)

    # someone else signs in to this browser (another tenant's session cookie, as a sign-in
    # would set it) and opens a page: it tells the worker whose it is
    other = await person(dash.gateway, dsn, await make_tenant(dsn), Role.admin.value)
    await seat.context.add_cookies([{
        "name": cookies.SESSION, "value": other.secret, "path": "/",
        "domain": urlsplit(seat.person.origin).hostname, "secure": True, "httpOnly": True, "sameSite": "Lax",
    }])  # fmt: skip
    await seat.goto("/")
    await expect(page.locator("body")).to_have_attribute("data-user", str(other.user_id))
    await page.wait_for_function(
        """async (iid) => {
            for (const name of ['seedos-pages-v1', 'seedos-api-v1']) {
                if (!await caches.has(name)) continue
                const keys = await (await caches.open(name)).keys()
                if (keys.some((r) => r.url.includes(iid))) return false
            }
            return true
        }""",
        arg=iid,
        polling=100,
    )
    assert unexpected(seat) == []


async def test_a_copy_older_than_a_week_is_not_shown(signed_in, net) -> None:
    seat = await signed_in(proxy={"server": net.server})
    page = seat.page
    await seat.goto("/")
    await worker_ready(page)
    await seat.goto("/")
    await expect(page.get_by_text("No integrations yet")).to_be_visible()
    listed = "/api/v1/integrations?limit=100"
    assert listed in (await kept(page))["seedos-api-v1"]
    # the copy as it would be eight days on
    await page.evaluate(
        """async (path) => {
            const cache = await caches.open('seedos-api-v1')
            const copy = await cache.match(path)
            const headers = new Headers(copy.headers)
            headers.set('x-seedos-cached-at', new Date(Date.now() - 8 * 86400e3).toISOString())
            await cache.put(path, new Response(await copy.blob(), { status: 200, headers }))
        }""",
        listed,
    )
    net.cut()
    await page.reload()
    await expect(page.get_by_text("The integrations could not be loaded.")).to_be_visible()
    await expect(page.locator("#connection")).to_contain_text("may be out of date")
    assert listed not in (await kept(page))["seedos-api-v1"]  # dropped, not only passed over
    assert unexpected(seat) == []


async def test_a_page_opened_offline_past_its_idle_time_keeps_working(
    dash: Dash, signed_in, net
) -> None:
    """A kept page carries its session's end as the page saw it: opened offline hours later,
    it does not declare the session over (the server alone knows, and work done offline waits
    for the same person), nor when the connection returns, until the server has answered it:
    here the session goes on."""
    seat = await signed_in(proxy={"server": net.server})
    iid = await installed(dash, seat)
    page = seat.page
    await page.clock.install()
    await seat.goto(f"/integrations/{iid}")
    await worker_ready(page)
    await page.reload()
    await settled(page)
    net.cut()
    await page.reload()
    await expect(page.locator("#connection")).to_contain_text("You are offline.")
    await page.clock.fast_forward("03:00:00")  # past the idle time and the absolute end
    dialog = page.locator("#session-dialog")
    await page.get_by_role("button", name="Check now").click()  # work goes on
    await expect(page.locator("#page-notice")).to_have_text(
        "Saved on this device; sent when the connection returns."
    )
    await expect(dialog).to_be_hidden()
    net.restore()
    await page.clock.fast_forward("00:00:20")  # the page's probe finds the server
    await expect(page.locator("#connection")).to_be_hidden()
    await expect(dialog).to_be_hidden()  # a copy's reckoning: nothing said before an answer
    await page.get_by_role("button", name="Check now").click()
    await expect(page.locator("#page-notice")).not_to_have_text(
        "Saved on this device; sent when the connection returns."
    )
    await page.clock.fast_forward("00:00:05")
    await expect(dialog).to_be_hidden()  # the server answered: the session goes on
    assert unexpected(seat) == []


PAGE_COPY = """async (path) => {
    const copy = await (await caches.open('seedos-pages-v1')).match(path)
    return copy ? await copy.text() : null
}"""


async def test_copies_keep_no_token_and_sign_out_still_works(crm_install, net) -> None:
    """No CSRF token waits in Cache Storage: the session's own answers (no-store: GET
    /api/v1/me and its token) are never kept, and a page's copy has its token emptied; a page
    opened from that copy asks the session for it, and signing out from it works."""
    seat, iid, _ = crm_install
    page = seat.page
    held = await integration_kept(seat, iid)
    await page.evaluate("async () => (await fetch('/api/v1/me')).status")  # asked, not kept
    held = await kept(page)
    assert not [u for u in held["seedos-api-v1"] if u.startswith("/api/v1/me")], held
    copy = await page.evaluate(PAGE_COPY, f"/integrations/{iid}")
    assert '<meta name="csrf-token" content="">' in copy
    assert seat.person.csrf_token not in copy

    net.cut()
    await page.reload()  # the copy, without a token
    await expect(page.locator("#connection")).to_contain_text("You are offline.")
    net.restore()
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(re.compile(r"/auth/"))
    async with httpx.AsyncClient(base_url=seat.person.origin) as client:
        assert (await client.get("/api/v1/me", headers=seat.person.cookie)).status_code == 401
    assert unexpected(seat) == []


async def test_copies_end_with_the_session(crm_install, net, dsn) -> None:
    """Past the session's absolute end, what was kept in it is shown to no one offline."""
    seat, iid, _ = crm_install
    page = seat.page
    conn = await asyncpg.connect(dsn)
    try:
        ends = await conn.fetchval(
            "UPDATE sessions SET absolute_expires_at = now() + interval '5 seconds'"
            " WHERE id = $1 RETURNING absolute_expires_at",
            seat.person.session_id,
        )
    finally:
        await conn.close()
    await integration_kept(seat, iid)  # the page says when its session ends, at the latest
    net.cut()
    await asyncio.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()) + 0.5)  # the end
    await page.reload()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "This page is not available offline"
    )
    assert not (await kept(page)).get("seedos-api-v1")
    assert unexpected(seat) == []
