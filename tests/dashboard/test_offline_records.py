"""Record edits offline: a person behind a network the test cuts (tests/netcut.py) edits records
while another person, online, and the demo CRM change the same records; the edits are kept on
the device (y-indexeddb) across a reload, and when the network returns both sides' edits are
merged (one value for a field both changed, the same everywhere), the edit the stream's schema
refuses is shown and dropped without a reconnect loop, and the rest reach the CRM."""

from __future__ import annotations

import asyncio
import re
import secrets

import httpx
import pytest
from playwright.async_api import Page, expect

from common.roles import Role
from tests.dashboard.conftest import Dash, axe, installed, settled, shoot
from tests.dashboard.offline import worker_ready
from tests.dashboard.test_records_page import LIVE, crm_has, synced

KEPT = "Saved on this device. It is sent when the connection returns."
LOOP_WINDOW_S = 3  # how long the page is watched for reconnections after the merge


async def edit(page: Page, pk: str, field: str, value: str) -> None:
    row = page.get_by_role("row", name=pk)
    await row.get_by_role("button", name=f"Edit contacts {pk}").click()
    await row.get_by_label(f"{field.replace('_', ' ')} of contacts {pk}").fill(value)
    await row.get_by_role("button", name="Save").click()


def cell(page: Page, pk: str, field: str):
    return page.get_by_role("row", name=pk).locator(f'td[data-field="{field}"]')


@pytest.fixture
async def contacts(dash: Dash, signed_in, net):
    """Four demo CRM contacts of a tag of their own, synced into a new install; a person behind
    the cuttable network (seat) and another of the same tenant online (other)."""
    seat = await signed_in(role=Role.editor, proxy={"server": net.server})
    other = await signed_in(role=Role.editor, tenant=seat.tenant)
    crm = httpx.AsyncClient(
        base_url=dash.rig.crm.url, headers={"X-API-Key": dash.rig.crm_key}, timeout=30
    )
    tag = secrets.token_hex(4)
    made = []
    for n in range(4):
        r = await crm.post("/v1/contacts", json={
            "email": f"c{n}-{tag}@example.com", "first_name": f"First{n}", "last_name": f"T{tag}",
        })  # fmt: skip
        assert r.status_code == 201, r.text
        made.append(r.json())
    iid = await installed(dash, seat)
    await seat.api.patch(f"/api/v1/integrations/{iid}", json={"sync_interval_seconds": 0})
    await synced(seat, iid)
    try:
        yield seat, other, iid, made, crm, tag
    finally:
        await crm.aclose()


async def test_offline_edits_survive_a_reload_and_merge_both_ways(
    dash: Dash, contacts, net
) -> None:
    seat, other, iid, made, crm, tag = contacts
    c1, c2, c3, c4 = (m["id"] for m in made)
    path = f"/integrations/{iid}/records?stream=contacts&q=T{tag}"
    page = seat.page
    await seat.goto(path)
    await worker_ready(page)
    await seat.goto(path)  # again, under the service worker: the page and its data are kept
    await expect(page.locator("#live-state")).to_have_text(LIVE)
    await other.goto(path)
    await expect(other.page.locator("#live-state")).to_have_text(LIVE)

    net.cut()
    await expect(page.locator("#live-state")).to_contain_text("Offline")
    await edit(page, c1, "first_name", "Offline-A")
    await expect(page.get_by_role("row", name=c1).locator(".row-status")).to_have_text(KEPT)
    await edit(page, c2, "phone", "+1 555 0100")
    await edit(page, c4, "last_name", "Apart-A")
    await edit(page, c3, "email", "")  # required by the stream's schema: refused on return
    await expect(page.locator("#live-state")).to_have_text("Offline: 4 edits wait on this device")
    await settled(page)
    await axe(page, "records, offline edits")
    await shoot(page, "records-offline")

    # the other side of the cut: another person, and the CRM itself, change the same records
    await edit(other.page, c1, "last_name", "Online-B")
    await expect(other.page.get_by_role("row", name=c1).locator(".row-status")).to_contain_text(
        "Saved."
    )
    await edit(other.page, c4, "last_name", "Apart-B")
    await expect(other.page.get_by_role("row", name=c4).locator(".row-status")).to_contain_text(
        "Saved."
    )
    r = await crm.patch(f"/v1/contacts/{c2}", json={"first_name": "From-CRM"})
    assert r.status_code == 200, r.text
    await synced(other, iid)  # pulled into the document
    await expect(cell(other.page, c2, "first_name")).to_have_text("From-CRM")

    # a reload, still offline: the page from the service worker, the edits from this device
    await page.reload()
    await expect(page.locator("#connection")).to_contain_text("You are offline")
    await expect(cell(page, c1, "first_name")).to_have_text("Offline-A")
    await expect(cell(page, c2, "phone")).to_have_text("+1 555 0100")
    await expect(page.get_by_role("row", name=c1).locator(".row-status")).to_have_text(KEPT)

    net.restore()
    await expect(page.locator("#live-state")).to_have_text(LIVE, timeout=30_000)
    # both sides' edits, in both browsers
    for who in (page, other.page):
        await expect(cell(who, c1, "first_name")).to_have_text("Offline-A")
        await expect(cell(who, c1, "last_name")).to_have_text("Online-B")
        await expect(cell(who, c2, "first_name")).to_have_text("From-CRM")
        await expect(cell(who, c2, "phone")).to_have_text("+1 555 0100")
    # the field both changed while apart: one value, the same everywhere
    winner = await cell(other.page, c4, "last_name").text_content()
    assert winner in ("Apart-A", "Apart-B")
    await expect(cell(page, c4, "last_name")).to_have_text(winner)
    # the refused edit: said, dropped from this device, the record as the server holds it
    refusals = page.locator("#records-refusals")
    await expect(refusals).to_contain_text(f"contacts/{c3}")
    await expect(refusals).to_contain_text("was refused: email")
    await expect(cell(page, c3, "email")).to_have_text(made[2]["email"])
    # no reconnect loop: the page stays live and opens no new connection for a while
    sockets = net.sockets()
    await asyncio.sleep(LOOP_WINDOW_S)  # watching for something that must not happen
    assert net.sockets() == sockets, f"the page kept reconnecting: {net.opened[-10:]}"
    await expect(page.locator("#live-state")).to_have_text(LIVE)
    await settled(page)
    await axe(page, "records, a refused offline edit")
    await shoot(page, "records-offline-refused")
    await refusals.get_by_role("button", name="Dismiss").click()
    await expect(refusals).to_be_hidden()
    await page.reload()
    await expect(page.locator("#live-state")).to_have_text(LIVE)
    await expect(refusals).to_be_hidden()  # seen and dismissed: gone for good

    # the server's records and the CRM
    r = await seat.api.get(f"/api/v1/integrations/{iid}/records/contacts/{c1}")
    assert (r.json()["first_name"], r.json()["last_name"]) == ("Offline-A", "Online-B")
    r = await seat.api.get(f"/api/v1/integrations/{iid}/records/contacts/{c3}")
    assert r.json()["email"] == made[2]["email"]
    await crm_has(crm, c1, first_name="Offline-A", last_name="Online-B")
    await crm_has(crm, c2, first_name="From-CRM", phone="+1 555 0100")
    await crm_has(crm, c4, last_name=winner)
    assert _real(seat.errors) == [] and other.errors == []


# Chromium logs each request the cut network fails; those are the test's doing
_CUT = re.compile(r"net::ERR_(PROXY_CONNECTION_FAILED|CONNECTION_REFUSED|CONNECTION_RESET)")


def _real(errors: list[str]) -> list[str]:
    return [e for e in errors if not _CUT.search(e)]


SEED_OLD_COPIES = """async (count) => {
  const owner = `${document.body.dataset.user}:${document.body.dataset.tenantId}`
  const key = `seedos-shards:${owner}`
  const index = JSON.parse(localStorage.getItem(key)) || {}
  for (let n = 0; n < count; n += 1) {
    const name = `seedos-shard:${owner}:older:${n}`
    index[name] = { opened: n + 1, bytes: 1000 }  // opened long ago, oldest first
    await new Promise((resolve, reject) => {
      const opening = indexedDB.open(name)
      opening.onsuccess = () => { opening.result.close(); resolve() }
      opening.onerror = () => reject(opening.error)
    })
  }
  localStorage.setItem(key, JSON.stringify(index))
  // the oldest holds an edit not yet confirmed: it must stay whatever its age
  localStorage.setItem(`seedos-notes:seedos-shard:${owner}:older:0`, JSON.stringify({
    pending: [{ key: 'contacts/x', fields: { phone: '1' }, client: 1, clock: 1, at: '' }],
    refusals: []
  }))
  return owner
}"""


async def test_the_device_keeps_a_bounded_number_of_copies(dash: Dash, contacts) -> None:
    """At most 64 shard documents stay on the device: opening one more removes the least
    recently opened one that holds no unconfirmed edit (y-indexeddb's database and its notes)."""
    seat, _, iid, _, _, tag = contacts
    page = seat.page
    await seat.goto(f"/integrations/{iid}/records?stream=contacts&q=T{tag}")
    await expect(page.locator("#live-state")).to_have_text(LIVE)
    owner = await page.evaluate(SEED_OLD_COPIES, 64)  # 64 old copies + this page's: one too many
    await page.reload()
    await expect(page.locator("#live-state")).to_have_text(LIVE)
    prefix = f"seedos-shard:{owner}:"
    names = set(await page.evaluate(
        "async (prefix) => (await indexedDB.databases()).map((d) => d.name)"
        ".filter((n) => n.startsWith(prefix))",
        prefix,
    ))  # fmt: skip
    assert f"{prefix}older:0" in names  # oldest, but with an unconfirmed edit
    assert f"{prefix}older:1" not in names  # the oldest without one: removed
    assert len(names) == 64
    index = await page.evaluate(
        "(owner) => JSON.parse(localStorage.getItem(`seedos-shards:${owner}`))", owner
    )
    assert len(index) == 64 and f"{prefix}older:1" not in index
    assert seat.errors == []
