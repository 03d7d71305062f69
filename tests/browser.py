"""A real browser for tests: Debian's Chromium (``make test`` installs it), driven by Playwright's
async API. One Chromium per test session; each :func:`isolated_context` is one more person's
browser, with cookies and storage of its own, that can reach loopback addresses only.

Import the fixtures where they are used (a module, or a folder's conftest.py)::

    from tests.browser import chromium, new_browser  # noqa: F401
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, Route, async_playwright

from gateway.settings import is_loopback as is_loopback_host

DEFAULT_CHROMIUM = "/usr/bin/chromium"  # Debian's package (Playwright's download is not used)
CHROMIUM_ARGS = (
    "--no-sandbox",  # the tests run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
ACTION_TIMEOUT_MS = 15_000  # each click, fill or wait; a navigation too
LAUNCH_TIMEOUT_MS = 30_000


def chromium_path() -> str:
    """The Chromium to drive: ``SEEDOS_CHROMIUM``, or Debian's."""
    return os.environ.get("SEEDOS_CHROMIUM") or DEFAULT_CHROMIUM


@asynccontextmanager
async def launch_chromium() -> AsyncIterator[Browser]:
    """A headless Chromium for as long as the block lasts."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(),
            headless=True,
            args=list(CHROMIUM_ARGS),
            timeout=LAUNCH_TIMEOUT_MS,
        )
        try:
            yield browser
        finally:
            await browser.close()


def is_loopback(url: str) -> bool:
    """Whether a URL points at this machine (data:, blob: and about: URLs count as local)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss"):
        return True
    return is_loopback_host(parts.hostname or "")


async def _refuse(route: Route) -> None:
    await route.abort("blockedbyclient")


@asynccontextmanager
async def isolated_context(browser: Browser, **options: Any) -> AsyncIterator[BrowserContext]:
    """A fresh context of ``browser``: one person's browser, sharing no cookies or storage with
    any other. Every action and navigation times out after ``ACTION_TIMEOUT_MS``, and requests
    to anything but loopback are refused (the provider's pages import web fonts, for one).
    ``options`` go to ``Browser.new_context`` (``locale``, ``viewport``, ...)."""
    context = await browser.new_context(**options)
    try:
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        context.set_default_navigation_timeout(ACTION_TIMEOUT_MS)
        await context.route(lambda url: not is_loopback(url), _refuse)
        yield context
    finally:
        await context.close()


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Browser]:
    """The session's Chromium. Tests open contexts on it (:func:`new_browser`), never pages on
    it directly, so that no two tests share cookies."""
    async with launch_chromium() as browser:
        yield browser


@pytest.fixture
async def new_browser(
    chromium: Browser,
) -> AsyncIterator[Callable[..., Awaitable[BrowserContext]]]:
    """Opens isolated contexts (:func:`isolated_context`), each one more person's browser; all
    close when the test ends. ``await new_browser()``, then ``await context.new_page()``."""
    async with AsyncExitStack() as stack:

        async def open_context(**options: Any) -> BrowserContext:
            return await stack.enter_async_context(isolated_context(chromium, **options))

        yield open_context
