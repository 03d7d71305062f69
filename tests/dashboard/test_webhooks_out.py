"""The Webhooks pages and the email opt-out, in Chromium, against the real suite delivering to a
receiver on 127.0.0.1 that this module starts: an admin is refused a private address at the URL
field, adds an endpoint (its secret shown once), sends a test event the receiver gets signed
(verified with `standardwebhooks`), sees the delivery and its attempt with the answer's first
KiB as text, replays it (same webhook-id), rotates the secret (both sign during the grace),
edits, disables and deletes it; a viewer sees no control; the opt-out round-trips through
/api/v1/me/notifications. axe in both themes, screenshots."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from playwright.async_api import Page, expect
from standardwebhooks import Webhook

from common.roles import Role
from tests.connector_service.outbound_rig import Receiver
from tests.connector_service.rig import register, start_rig, stop_rig
from tests.dashboard.conftest import Dash, axe, settled, shoot
from tests.people import person
from tests.support import free_port

# the receiver's answer: markup that must show as text, and more than the 1 KiB kept
ANSWER = "<b id=injected>thanks</b><script>document.title='x'</script>" + "." * 2000


@pytest.fixture(scope="module")
async def dash(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Dash]:
    """The dashboard's rig (conftest.py's), its connector_service allowed to send to loopback
    (as an operator would list a network) and retrying fast."""
    rig = start_rig(
        dsn, tmp_path_factory.mktemp("webhooks-out"),
        SEEDOS_EGRESS_ALLOWED_NETWORKS="127.0.0.0/8",
        SEEDOS_CONNECTOR_OUTBOUND_DELIVER="true",  # off in other suites (tests/conftest.py)
        SEEDOS_CONNECTOR_WEBHOOK_RETRY_SCHEDULE_SECONDS=json.dumps([0.5, 1, 1]),
        SEEDOS_CONNECTOR_OUTBOUND_POLL_SECONDS="0.1",
    )  # fmt: skip
    try:
        yield Dash(rig, await register(dsn, rig.crm_connector.url))
    finally:
        stop_rig(rig)


class Answering(Receiver):
    """outbound_rig's receiver, answering ANSWER."""

    async def _handle(self, request: web.Request) -> web.Response:
        await super()._handle(request)
        return web.Response(status=self.status, text=ANSWER, content_type="text/html")


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    r = Answering(free_port())
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


def verified(secret: str, got) -> dict:
    return Webhook(secret).verify(got.body, got.headers)


async def confirm(page: Page, name: str) -> None:
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    await dialog.get_by_role("button", name=name).click()
    await expect(dialog).to_be_hidden()


async def test_an_admin_adds_tests_replays_rotates_disables_and_deletes(dash, signed_in, hook):
    seat = await signed_in(role=Role.admin)
    page = seat.page
    await seat.goto("/")
    await page.get_by_role("link", name="Webhooks").click()
    await expect(page.get_by_role("heading", level=1, name="Webhooks")).to_be_visible()
    await expect(page.get_by_role("heading", name="No endpoints yet")).to_be_visible()
    await settled(page)
    await axe(page, "webhooks, none")

    # a private address is refused at the URL field, in words, and nothing is made
    form = page.locator("#add-form")
    await form.get_by_label("URL").fill("http://10.1.2.3/hook")
    await form.get_by_label("sync.finished").check()
    await form.get_by_role("button", name="Add endpoint").click()
    url_error = page.locator("#add-url-error")
    await expect(url_error).to_contain_text("10.1.2.3 is not a public address")
    await expect(form.get_by_label("URL")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#add-form .error-summary")).to_be_focused()
    assert (await seat.api.get("/api/v1/webhooks")).json()["items"] == []
    await axe(page, "webhooks, refused address")

    # no event chosen: said at the events, before asking the API
    await form.get_by_label("sync.finished").uncheck()
    await form.get_by_label("URL").fill(hook.url)
    await form.get_by_role("button", name="Add endpoint").click()
    await expect(page.locator("#add-form .error-summary")).to_contain_text("Choose at least one")

    # added: the secret shown once, with a copy button
    await form.get_by_label("Description").fill("Billing receiver")
    await form.get_by_label("sync.finished").check()
    await form.get_by_label("webhook.endpoint_disabled").check()
    await form.get_by_role("button", name="Add endpoint").click()
    box = page.get_by_role("group", name="The signing secret of Billing receiver")
    await expect(box).to_contain_text("you will not see it again")
    await expect(box.get_by_role("heading")).to_be_focused()
    await expect(box.get_by_role("button", name="Copy")).to_be_visible()
    secret = await box.locator(".secret-value").inner_text()
    assert secret.startswith("whsec_")
    card = page.locator(".endpoint").first
    await expect(card.get_by_role("heading", level=3)).to_have_text("Billing receiver")
    await expect(card).to_contain_text("Enabled")
    await expect(card).to_contain_text("None yet")
    await expect(card).to_contain_text("A sync run finished")
    endpoint = (await seat.api.get("/api/v1/webhooks")).json()["items"][0]
    assert endpoint["url"] == hook.url
    assert endpoint["event_types"] == ["sync.finished", "webhook.endpoint_disabled"]
    await axe(page, "webhooks, secret shown once")
    await shoot(page, "webhooks-secret-once")
    await box.get_by_role("button", name="Done, I stored it").click()
    await expect(box).to_have_count(0)
    await page.reload()
    await expect(page.locator(".endpoint")).to_have_count(1)
    assert secret not in await page.content()

    # a test event: the receiver gets it signed with the secret
    await card.get_by_role("button", name="Send a test event").click()
    await expect(card.locator(".endpoint-status")).to_contain_text("A test event")
    got = await hook.wait_for(lambda g: g[:1])
    first = got[0]
    assert verified(secret, first)["type"] == "webhook.test"

    # its delivery and attempt, the answer's first KiB shown as text
    await card.get_by_role("link", name="Deliveries to Billing receiver").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Deliveries to Billing receiver"
    )
    delivery = page.locator(".delivery").first
    await expect(delivery).to_contain_text("Delivered")  # followed while it was pending
    await expect(delivery).to_contain_text(first.id)  # the webhook-id it carried
    attempt = delivery.locator("tbody tr")
    await expect(attempt).to_have_count(1)
    await expect(attempt).to_contain_text("HTTP 200")
    await attempt.get_by_text("Show the answer (1,024 bytes)").click()
    answer = attempt.locator("pre")
    await expect(answer).to_contain_text("<b id=injected>thanks</b><script>")
    await expect(page.locator("#injected")).to_have_count(0)  # text, never markup
    assert len(await answer.inner_text()) == 1024
    await settled(page)
    await axe(page, "deliveries")
    await shoot(page, "webhook-deliveries")

    # replayed: a new delivery, the same webhook-id, signed again
    await delivery.get_by_role("button", name="Replay").click()
    await expect(page.locator(".delivery")).to_have_count(2)
    replayed = page.locator(".delivery").first
    await expect(replayed.get_by_role("heading", level=3)).to_be_focused()
    await expect(replayed).to_contain_text("Replay of")
    await expect(replayed).to_contain_text("Delivered")
    got = await hook.wait_for(lambda g: g[1:2])
    assert got[0].id == first.id and verified(secret, got[0])["type"] == "webhook.test"
    await page.get_by_role("button", name="Dark theme").click()
    await settled(page)
    await axe(page, "deliveries, dark")

    # rotated: the new secret shown once, the old one signing beside it through the grace
    await page.get_by_role("link", name="Webhooks", exact=True).first.click()
    card = page.locator(".endpoint").first
    await expect(card).to_contain_text("webhook.test")  # its last delivery
    await card.get_by_role("button", name="Rotate secret").click()
    await confirm(page, "Make a new secret")
    box = page.get_by_role("group", name="The new signing secret of Billing receiver")
    await expect(box).to_contain_text("The previous secret keeps signing too until")
    new_secret = await box.locator(".secret-value").inner_text()
    assert new_secret.startswith("whsec_") and new_secret != secret
    await card.get_by_role("button", name="Send a test event").click()
    got = await hook.wait_for(lambda g: g[2:3])
    assert len(got[0].headers["webhook-signature"].split()) == 2
    assert verified(secret, got[0]) == verified(new_secret, got[0])
    await axe(page, "webhooks, rotated, dark")

    # edited at the card
    await card.get_by_role("button", name="Edit").click()
    editing = page.locator(".endpoint.editing")
    await editing.get_by_label("Description").fill("Billing, v2")
    await editing.get_by_role("button", name="Save changes").click()
    card = page.locator(".endpoint").first
    await expect(card.get_by_role("heading", level=3)).to_have_text("Billing, v2")
    await expect(card.get_by_role("heading", level=3)).to_be_focused()

    # disabled: said why, no test event to send
    await card.get_by_role("button", name="Disable").click()
    await confirm(page, "Disable endpoint")
    await expect(card).to_contain_text("Disabled by an admin.")
    await expect(card.get_by_role("button", name="Send a test event")).to_have_count(0)
    await expect(card.get_by_role("button", name="Enable")).to_be_visible()
    assert (await seat.api.get(f"/api/v1/webhooks/{endpoint['id']}")).json()["enabled"] is False
    await axe(page, "webhooks, disabled, dark")
    await shoot(page, "webhooks-disabled")

    # deleted once confirmed
    await card.get_by_role("button", name="Delete").click()
    await confirm(page, "Delete endpoint")
    await expect(page.get_by_role("heading", name="No endpoints yet")).to_be_visible()
    assert (await seat.api.get("/api/v1/webhooks")).json()["items"] == []
    assert not seat.errors, seat.errors


async def test_a_viewer_reads_without_controls(dash, signed_in, dsn, hook):
    admin = await signed_in(role=Role.admin)
    r = await admin.api.post("/api/v1/webhooks", json={
        "url": hook.url, "event_types": ["sync.failed"], "description": "Pager"})  # fmt: skip
    assert r.status_code == 201, r.text
    endpoint = r.json()
    r = await admin.api.post(f"/api/v1/webhooks/{endpoint['id']}/test")
    assert r.status_code == 202, r.text
    viewer = await signed_in(
        role=Role.viewer, tenant=admin.tenant,
        who=await person(dash.gateway, dsn, admin.tenant, Role.viewer.value),
    )  # fmt: skip
    page = viewer.page
    await viewer.goto("/webhooks")
    card = page.locator(".endpoint")
    await expect(card).to_have_count(1)
    await expect(card).to_contain_text("Pager")
    await expect(page.locator("#add")).to_have_count(0)
    await expect(card.get_by_role("button")).to_have_count(0)
    await expect(page.locator("main")).to_contain_text("Admins add and change endpoints.")
    await card.get_by_role("link", name="Deliveries").click()
    await expect(page.locator(".delivery")).to_have_count(1)
    await expect(page.locator(".delivery")).to_contain_text("Delivered")
    await expect(page.locator("main").get_by_role("button", name="Replay")).to_have_count(0)
    await expect(page.get_by_role("button", name="Send a test event")).to_have_count(0)
    await settled(page)
    await axe(page, "deliveries, viewer")
    assert not viewer.errors, viewer.errors


async def test_the_email_opt_out_round_trips(dash, signed_in):
    seat = await signed_in(role=Role.admin)
    page = seat.page
    await seat.goto("/settings#notifications")
    box = page.get_by_label("Alerts and disabled webhook endpoints")
    await expect(box).to_be_checked()  # on unless turned off
    await expect(page.locator("#notifications-state")).to_contain_text("you are emailed")
    await box.uncheck()
    await page.locator("#notifications-form").get_by_role("button", name="Save").click()
    await expect(page.locator("#notifications-status")).to_contain_text("Saved: you will not be")
    async with httpx.AsyncClient(base_url=dash.gateway, headers=seat.person.cookie) as client:
        assert (await client.get("/api/v1/me/notifications")).json() == {"email": False}
    await page.reload()
    await expect(box).not_to_be_checked()
    await expect(page.locator("#notifications-state")).to_contain_text("you get no email")
    await settled(page)
    await axe(page, "settings, email off")
    await page.get_by_role("button", name="Dark theme").click()
    await box.check()
    await page.locator("#notifications-form").get_by_role("button", name="Save").click()
    await expect(page.locator("#notifications-status")).to_contain_text("Saved: you will be")
    async with httpx.AsyncClient(base_url=dash.gateway, headers=seat.person.cookie) as client:
        assert (await client.get("/api/v1/me/notifications")).json() == {"email": True}
    await axe(page, "settings, email on, dark")
    await shoot(page, "settings-notifications")
    assert not seat.errors, seat.errors
