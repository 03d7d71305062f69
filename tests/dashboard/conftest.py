"""The dashboard in a real browser: the suite, the demo CRM and its connector as real processes
(tests/connector_service/rig.py), Debian's Chromium driven by Playwright, axe-core run in the
pages, and screenshots of every page kept as CI artifacts.

A test opens the dashboard as a person of a tenant of its own (:func:`signed_in`): the session
is made in the database as a sign-in would (sign-in itself is tested through the real OpenID
provider, tests/dashboard/test_sign_in_flow.py), and its cookie put in a fresh browser context.

Screenshots go to ``SEEDOS_SCREENSHOTS`` (default ``test-artifacts/screenshots``), one per page
and state at 1280 and 360 px wide."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import BrowserContext, ConsoleMessage, Page, expect

from common.roles import Role
from gateway.sessions import cookies
from tests.browser import chromium, new_browser  # noqa: F401
from tests.conftest import ROOT
from tests.connector_service.rig import Rig, install_crm, register, start_rig, stop_rig
from tests.netcut import NetCut
from tests.people import Person, person
from tests.support import TenantKey, make_tenant

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(os.environ.get("SEEDOS_SCREENSHOTS") or ROOT / "test-artifacts" / "screenshots")
# WCAG 2.0-2.2 A, AA and AAA, and axe's best practices (landmarks, heading order, ...)
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag2aaa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
WIDTHS = {"desktop": 1280, "phone": 360}
REFLOW_WIDTH = 320  # WCAG 1.4.10: content reflows at 320 CSS px without scrolling both ways


@dataclass
class Dash:
    rig: Rig
    slug: str  # the demo CRM connector's catalog entry, for this folder's tests

    @property
    def gateway(self) -> str:
        return self.rig.suite.gateway


@pytest.fixture(scope="package")
async def dash(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Dash]:
    rig = start_rig(dsn, tmp_path_factory.mktemp("dashboard"))
    try:
        slug = await register(dsn, rig.crm_connector.url)
        yield Dash(rig, slug)
    finally:
        stop_rig(rig)


@pytest.fixture
def net(dash: Dash) -> Iterator[NetCut]:
    """A network between a browser and the gateway that the test cuts and restores
    (tests/netcut.py): ``await signed_in(proxy={"server": net.server})`` puts a seat behind it;
    seats opened without it stay online."""
    with NetCut(dash.gateway) as cut:
        yield cut


@dataclass
class Seat:
    """One person at the dashboard: their browser, page, tenant and an API client of the
    tenant's (to arrange what a test needs without the browser)."""

    page: Page
    context: BrowserContext
    tenant: TenantKey
    person: Person
    api: httpx.AsyncClient
    errors: list[str]  # the page's uncaught errors and console errors

    async def goto(self, path: str) -> None:
        await self.page.goto(self.person.origin + path)


async def seat_for(
    open_browser: Callable[..., Awaitable[BrowserContext]],
    gateway: str,
    tenant: TenantKey,
    who: Person,
    stack: list,
    *,
    width: int = WIDTHS["desktop"],
    **options,
) -> Seat:
    context = await open_browser(viewport={"width": width, "height": 900}, **options)
    await context.add_cookies([{
        "name": cookies.SESSION, "value": who.secret, "domain": urlsplit(gateway).hostname,
        "path": "/", "secure": True, "httpOnly": True, "sameSite": "Lax",
    }])  # fmt: skip
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if _error(m) else None)
    client = httpx.AsyncClient(base_url=gateway, headers=tenant.headers, timeout=30)
    stack.append(client)
    return Seat(page, context, tenant, who, client, errors)


# Chromium logs every answer of 400-499 as a console error: the pages expect and show those
# (a 422 at its field, a 404 in words); a 5xx or anything else the page logs is a test failure.
_EXPECTED = re.compile(r"^Failed to load resource: the server responded with a status of 4\d\d")


def _error(message: ConsoleMessage) -> bool:
    return message.type == "error" and not _EXPECTED.match(message.text)


@pytest.fixture
async def signed_in(
    dash: Dash,
    dsn: str,
    new_browser,  # noqa: F811
) -> AsyncIterator[Callable[..., Awaitable[Seat]]]:
    """``await signed_in(role=..., tenant=None, who=None, width=1280)``: a person of a new
    tenant (or of ``tenant``; or ``who``, made by the test) at the dashboard."""
    clients: list[httpx.AsyncClient] = []

    async def open_seat(
        role: Role = Role.admin,
        tenant: TenantKey | None = None,
        who: Person | None = None,
        **options,
    ) -> Seat:
        tenant = tenant or await make_tenant(dsn, role=Role.admin)
        who = who or await person(dash.gateway, dsn, tenant, role.value)
        return await seat_for(new_browser, dash.gateway, tenant, who, clients, **options)

    try:
        yield open_seat
    finally:
        for client in clients:
            await client.aclose()


async def installed(dash: Dash, seat: Seat, **config) -> str:
    """The demo CRM installed for the seat's tenant (through the API); its id."""
    return await install_crm(seat.api, dash.rig, dash.slug, **config)


async def axe(page: Page, what: str) -> None:
    """axe-core's WCAG 2.2 A-AAA rules and best practices on the page as it is now: no
    violation. (Evaluated through the DevTools protocol, so the page's CSP stays on.)"""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE.read_text())
    result = await page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags},"
        " resultTypes: ['violations']})",
        AXE_TAGS,
    )
    problems = [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(n["target"][0] if n["target"] else "?" for n in v["nodes"][:5])
        for v in result["violations"]
    ]
    assert not problems, f"{what}: " + json.dumps(problems, indent=1)


def _folder() -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)


async def shoot(page: Page, name: str) -> None:
    """Screenshots of the page at 1280 and 360 px wide (the viewport is put back), and the page
    reflowed at 320 px (WCAG 1.4.10): nothing but a data table's own scroller is wider."""
    _folder()
    before = page.viewport_size or {"width": WIDTHS["desktop"], "height": 900}
    safe = re.sub(r"[^a-z0-9-]+", "-", name.lower())
    for label, width in WIDTHS.items():
        await page.set_viewport_size({"width": width, "height": 900})
        await page.screenshot(path=SCREENSHOTS / f"{safe}-{label}.png", full_page=True)
    await page.set_viewport_size({"width": REFLOW_WIDTH, "height": 900})
    wider = await page.evaluate(
        """width => [...document.querySelectorAll('body *')].filter(el => {
            if (el.closest('.table-wrap, dialog:not([open]), [hidden]')) return false
            const box = el.getBoundingClientRect()
            return box.width > 0 && box.right > width + 1
        }).slice(0, 5).map(el => el.outerHTML.slice(0, 120))""",
        REFLOW_WIDTH,
    )
    assert not wider, f"{name}: wider than {REFLOW_WIDTH} px: {wider}"
    await page.set_viewport_size(before)


async def settled(page: Page) -> None:
    """Nothing of the page's is still loading (no element is aria-busy)."""
    await expect(page.locator("[aria-busy=true], .loading")).to_have_count(0)
