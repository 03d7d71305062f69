"""Development mode's sign-in without a provider: "Continue as the demo admin" on the sign-in
page, in Chromium, against a gateway in development mode; refused in production mode."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Suite, start_suite


@pytest.fixture(scope="module")
def dev_suite(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    folder = tmp_path_factory.mktemp("dev-sign-in")
    running = start_suite(
        dsn, folder / "services.log", SEEDOS_ENV="development", SEEDOS_DATA_DIR=str(folder)
    )
    try:
        yield running
    finally:
        running.supervisor.stop()


async def test_continue_as_the_demo_admin(dev_suite, new_browser) -> None:
    page = await (await new_browser()).new_page()
    await page.goto(dev_suite.gateway + "/")  # not signed in: the sign-in page
    assert page.url == dev_suite.gateway + "/auth/sign-in"
    await page.get_by_role("button", name="Continue as the demo admin").click()
    await page.wait_for_url(dev_suite.gateway + "/")
    assert "Signed in as" in await page.content()
    me = await page.evaluate("fetch('/api/v1/me').then(r => r.json())")
    assert (me["auth_method"], me["role"], me["tenant"]["slug"]) == ("session", "admin", "demo")
    assert me["session"]["expires_at"] and me["csrf_token"]
    # signing out from the page's button ends it
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(dev_suite.gateway + "/auth/signed-out")
    status = await page.evaluate("fetch('/api/v1/me').then(r => r.status)")
    assert status == 401


async def test_the_development_sign_in_wants_a_same_site_form(dev_suite) -> None:
    async with httpx.AsyncClient(base_url=dev_suite.gateway) as client:
        for headers in ({}, {"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"}):
            r = await client.post("/auth/dev-login", headers=headers)
            assert r.status_code == 403 and r.json()["code"] == "csrf_refused", (headers, r.text)
            assert "set-cookie" not in r.headers


async def test_production_has_no_development_sign_in(suite) -> None:
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        r = await client.post("/auth/dev-login", headers={"origin": suite.gateway})
        assert r.status_code == 404 and "set-cookie" not in r.headers
        page = (await client.get("/auth/sign-in")).text
    assert "demo admin" not in page
