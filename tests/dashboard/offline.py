"""What the offline tests share: waiting for the dashboard's service worker to control a page
(before that, nothing the page loads is kept for offline use)."""

from __future__ import annotations

from playwright.async_api import Page


async def worker_ready(page: Page) -> None:
    """The service worker is active and controls ``page`` (it claims open pages when it
    activates), so what the page loads from now on is kept for offline use."""
    await page.wait_for_function(
        # a function, not an expression: Playwright evals an expression in the page, which
        # the dashboard's Content-Security-Policy (no 'unsafe-eval') refuses
        "() => navigator.serviceWorker && navigator.serviceWorker.controller !== null"
    )
