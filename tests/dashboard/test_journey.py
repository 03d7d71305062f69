"""A person's first visit, end to end through real parts: they sign in through a real OpenID
provider (npm oidc-provider) in Chromium, land on an empty overview, find the demo CRM in the
marketplace, install it through the wizard, see it become active, and open its records."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.async_api import expect

from common.roles import Role
from gateway.users import repository as users
from gateway.users import service as user_service
from marketplace_service.catalog.service import register_deployed
from seedos_cli.supervisor import SERVICES
from seedos_sdk.testing import free_port
from tests.connector_service.rig import Rig, start_rig, stop_rig
from tests.dashboard.conftest import axe, shoot
from tests.oidc_people import oidc_provider, sign_in_at_provider, web_client
from tests.support import connected, make_tenant

CLIENT = ("seedos-dashboard", "seedos-dashboard-secret")


@dataclass
class World:
    rig: Rig
    issuer: str
    gateway: str


@pytest.fixture(scope="module")
def world(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    logs = tmp_path_factory.mktemp("journey")
    ports = {spec.name: free_port() for spec in SERVICES}
    gateway = f"http://127.0.0.1:{ports['gateway']}"
    client = web_client(*CLIENT, redirect_uris=[gateway + "/auth/callback"])
    accounts = {"ada": {"email": "ada@example.com", "email_verified": True, "name": "Ada"}}
    with oidc_provider(clients=[client], accounts=accounts, log_path=logs / "oidc.log") as idp:
        providers = {"company": {"issuer": idp.issuer, "client_id": CLIENT[0],
                                 "client_secret": CLIENT[1], "display_name": "Company SSO"}}  # fmt: skip
        rig = start_rig(dsn, logs, ports=ports, SEEDOS_GATEWAY_OIDC_PROVIDERS=json.dumps(providers))
        try:
            yield World(rig, idp.issuer, gateway)
        finally:
            stop_rig(rig)


async def test_sign_in_install_and_see_it_active(world, dsn, new_browser) -> None:
    # in the catalog under a name of its own (other tests' demo CRMs share it)
    async with httpx.AsyncClient() as client:
        manifest = (await client.get(world.rig.crm_connector.url + "/manifest")).json()
    slug, name = f"journey-crm-{secrets.token_hex(3)}", "Journeyman CRM"
    async with connected(dsn) as conn:
        await register_deployed(conn, manifest={**manifest, "name": slug, "display_name": name},
                                endpoint_url=world.rig.crm_connector.url, category="crm",
                                vendor="tests")  # fmt: skip
    tenant = await make_tenant(dsn, role=Role.admin)
    async with connected(dsn) as conn, conn.transaction():  # Ada's admin invited her before
        user, _ = await user_service.sign_in(conn, user_service.Identity(
            issuer=world.issuer, subject="ada", provider="company", email="ada@example.com",
            email_verified=True, name="Ada"))  # fmt: skip
        await users.add_membership(conn, tenant_id=tenant.tenant_id, user_id=user["id"],
                                   role="editor", created_by="test")  # fmt: skip
    page = await (await new_browser()).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(world.gateway + "/")
    assert page.url == world.gateway + "/auth/sign-in"
    await axe(page, "sign-in")
    await shoot(page, "sign-in")
    await page.get_by_role("link", name="Continue with Company SSO").click()
    await sign_in_at_provider(page, "ada")
    await page.wait_for_url(world.gateway + "/")
    await expect(page.locator("#session-note")).to_contain_text(f"Ada in {tenant.slug} as editor")
    await expect(page.get_by_role("heading", name="No integrations yet")).to_be_visible()
    # to the marketplace, and the connector's page
    await page.get_by_role("link", name="Browse the marketplace").click()
    await page.get_by_label("Search connectors").fill("journeyman")
    await page.locator("#results").get_by_role("link", name=name).click()
    await expect(page.get_by_role("heading", level=1, name=name)).to_be_visible()
    # the wizard
    await page.get_by_role("button", name=f"Install {name}").click()
    await page.get_by_label("Demo CRM URL").fill(world.rig.crm.url)
    await page.get_by_label("API key").fill(world.rig.crm_key)
    await page.get_by_role("button", name="Next: review").click()
    await expect(page.get_by_role("heading", name="Review")).to_be_focused()
    await page.get_by_role("button", name="Install", exact=True).click()
    await expect(page.locator("#install-state .badge")).to_have_text("active", timeout=20_000)
    await page.get_by_role("link", name="Open the install").click()
    await expect(page.get_by_role("heading", level=1, name=name)).to_be_visible()
    # the overview lists it, active
    await page.get_by_role("link", name="Integrations", exact=True).first.click()
    row = page.locator("tr[data-id]")
    await expect(row).to_have_count(1)
    await expect(row.locator(".badge").first).to_have_text("active")
    assert errors == []
