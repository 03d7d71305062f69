"""The records browser: a stream's records from the JSON API, searched; an inline edit made in
the shard room of the record (never the whole install) reaches the demo CRM; two people editing
one record see each other at once; an edit the schema refuses shows its reason and is undone;
a keyboard-only edit; axe in every state."""

from __future__ import annotations

import asyncio
import secrets
import time

import httpx
import pytest
from playwright.async_api import Page, expect

from common.roles import Role
from tests.dashboard.conftest import Dash, Seat, axe, installed, settled, shoot

LIVE = "Live: changes appear as they happen"


async def synced(seat: Seat, iid: str) -> None:
    base = f"/api/v1/integrations/{iid}"
    r = await seat.api.post(base + "/sync/run")
    assert r.status_code in (202, 409), r.text
    deadline = time.monotonic() + 60
    while True:
        last = (await seat.api.get(base + "/sync/status")).json()["last_run"]
        if last and last["outcome"] not in ("running",) and last["finished_at"]:
            assert last["outcome"] == "succeeded", last
            return
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)


@pytest.fixture
async def contact(dash: Dash, signed_in):
    """A contact made in the demo CRM with a name of its own, synced into a new install; the
    seat (an editor), the install, the contact and a CRM client."""
    seat = await signed_in(role=Role.editor)
    crm = httpx.AsyncClient(
        base_url=dash.rig.crm.url, headers={"X-API-Key": dash.rig.crm_key}, timeout=30
    )
    tag = secrets.token_hex(4)
    r = await crm.post("/v1/contacts", json={
        "email": f"ada-{tag}@example.com", "first_name": "Ada", "last_name": f"L{tag}",
    })  # fmt: skip
    assert r.status_code == 201, r.text
    made = r.json()
    iid = await installed(dash, seat)
    await seat.api.patch(f"/api/v1/integrations/{iid}", json={"sync_interval_seconds": 0})
    await synced(seat, iid)
    try:
        yield seat, iid, made, crm
    finally:
        await crm.aclose()


async def open_record(page: Page, origin: str, iid: str, made: dict) -> None:
    await page.goto(f"{origin}/integrations/{iid}/records?stream=contacts&q={made['last_name']}")
    await expect(page.locator("#live-state")).to_have_text(LIVE)
    await expect(page.get_by_role("row", name=made["id"])).to_be_visible()


async def crm_has(crm: httpx.AsyncClient, cid: str, **fields) -> dict:
    deadline = time.monotonic() + 30
    while True:
        found = (await crm.get(f"/v1/contacts/{cid}")).json()
        if all(found.get(k) == v for k, v in fields.items()):
            return found
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.2)


async def test_an_edit_reaches_the_crm_and_the_other_browser(dash, contact, signed_in) -> None:
    seat, iid, made, crm = contact
    page = seat.page
    await open_record(page, seat.person.origin, iid, made)
    await expect(page.locator("#records-summary")).to_contain_text("1 contacts matching")
    await settled(page)
    await axe(page, "records")
    await shoot(page, "records")
    # a second person of the tenant has the same record open
    other = await signed_in(role=Role.editor, tenant=seat.tenant)
    await open_record(other.page, other.person.origin, iid, made)
    row = page.get_by_role("row", name=made["id"])
    await row.get_by_role("button", name=f"Edit contacts {made['id']}").click()
    await expect(row.get_by_label(f"first name of contacts {made['id']}")).to_be_focused()
    await axe(page, "records, editing")
    await shoot(page, "records-editing")
    await row.get_by_label(f"first name of contacts {made['id']}").fill("Augusta")
    await row.get_by_role("button", name="Save").click()
    await expect(row.locator(".row-status")).to_have_text(
        "Saved. It reaches the external system with the next push."
    )
    # the other browser sees it without reloading, and the CRM gets it
    other_row = other.page.get_by_role("row", name=made["id"])
    await expect(other_row.locator('td[data-field="first_name"]')).to_have_text("Augusta")
    await crm_has(crm, made["id"], first_name="Augusta")
    r = await seat.api.get(f"/api/v1/integrations/{iid}/records/contacts/{made['id']}")
    assert r.json()["first_name"] == "Augusta"
    # and the other way round, while the first person is editing the same record: what they
    # typed stays, and they are told what changed underneath
    await row.get_by_role("button", name=f"Edit contacts {made['id']}").click()
    await row.get_by_label(f"phone of contacts {made['id']}").fill("+44 20 7946 0000")
    await other_row.get_by_role("button", name=f"Edit contacts {made['id']}").click()
    await other_row.get_by_label(f"last name of contacts {made['id']}").fill("King")
    await other_row.get_by_role("button", name="Save").click()
    await expect(other_row.locator(".row-status")).to_contain_text("Saved.")
    await expect(row.locator('[data-changed="last_name"]')).to_have_text(
        "Changed by someone else to “King”."
    )
    assert await row.get_by_label(f"phone of contacts {made['id']}").input_value() == (
        "+44 20 7946 0000"
    )
    await row.get_by_role("button", name="Save").click()
    await expect(row.locator(".row-status")).to_contain_text("Saved.")
    await crm_has(crm, made["id"], last_name="King", phone="+44 20 7946 0000")
    assert seat.errors == [] and other.errors == []


async def test_a_refused_edit_shows_its_reason_and_is_undone(dash, contact) -> None:
    seat, iid, made, _ = contact
    page = seat.page
    await open_record(page, seat.person.origin, iid, made)
    row = page.get_by_role("row", name=made["id"])
    await row.get_by_role("button", name=f"Edit contacts {made['id']}").click()
    await row.get_by_label(f"email of contacts {made['id']}").fill("")  # required: refused
    await row.get_by_role("button", name="Save").click()
    status = row.locator(".row-status")
    await expect(status).to_contain_text("The change was refused: email")
    await expect(status).to_contain_text("back to what the server holds")
    await expect(row.locator('td[data-field="email"]')).to_have_text(made["email"])
    await expect(page.locator("#live-state")).to_have_text(LIVE)  # joined again, no loop
    await settled(page)
    await axe(page, "records, refused")
    await shoot(page, "records-refused")
    r = await seat.api.get(f"/api/v1/integrations/{iid}/records/contacts/{made['id']}")
    assert r.json()["email"] == made["email"]
    # the room goes on working after the refusal
    await row.get_by_role("button", name=f"Edit contacts {made['id']}").click()
    await row.get_by_label(f"first name of contacts {made['id']}").fill("Ada B.")
    await row.get_by_role("button", name="Save").click()
    await expect(status).to_contain_text("Saved.")
    assert seat.errors == []


async def test_a_keyboard_only_edit(dash, contact) -> None:
    seat, iid, made, crm = contact
    page = seat.page
    await open_record(page, seat.person.origin, iid, made)
    edit = page.get_by_role("button", name=f"Edit contacts {made['id']}")
    for _ in range(40):  # Tab from the top of the page to the record's Edit button
        await page.keyboard.press("Tab")
        if await edit.evaluate("el => el === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached the Edit button")
    await page.keyboard.press("Enter")
    await expect(page.get_by_label(f"first name of contacts {made['id']}")).to_be_focused()
    await page.keyboard.press("ControlOrMeta+a")
    await page.keyboard.type("Grace")
    await page.keyboard.press("Enter")  # submits the row's form
    await expect(page.get_by_role("row", name=made["id"]).locator(".row-status")).to_contain_text(
        "Saved."
    )
    await expect(edit).to_be_focused()  # back where the edit started
    await crm_has(crm, made["id"], first_name="Grace")
    assert seat.errors == []


async def test_a_viewer_reads_and_the_dark_theme(dash, contact, signed_in) -> None:
    seat, iid, made, _ = contact
    viewer = await signed_in(role=Role.viewer, tenant=seat.tenant)
    page = viewer.page
    await open_record(page, viewer.person.origin, iid, made)
    assert await page.get_by_role("button", name=f"Edit contacts {made['id']}").count() == 0
    await page.get_by_role("button", name="Dark theme").click()
    await settled(page)
    await axe(page, "records, viewer, dark")
    await shoot(page, "records-viewer-dark")
    # an empty search says so
    await page.get_by_role("searchbox", name="Search").fill(
        "nothing-like-this-" + secrets.token_hex(3)
    )
    await page.get_by_role("button", name="Search").click()
    await expect(page.get_by_role("heading", name="No records match")).to_be_visible()
    await axe(page, "records, no match")
    assert viewer.errors == []
