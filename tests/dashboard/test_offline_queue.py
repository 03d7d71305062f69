"""The offline queue in a real browser behind a network the test cuts (tests/netcut.py): changes
made on the integration page without a connection wait in IndexedDB, are sent when it returns
through POST /api/v1/integrations/sync-offline, each applied exactly once (counted at the demo
CRM, audited as offline.replayed); a conflict is shown with the current state, a poisoned item
does not block the next, refused items are discarded or edited and sent again; two tabs and a
replayed request apply nothing twice; another person signing in on the same browser never sees
or sends the first person's queue. axe on every state of the queue.

The page is reloaded while offline (from the service worker's copy): what waits is still there
and still sent once."""

from __future__ import annotations

import re
import secrets
from urllib.parse import urlsplit

import httpx
from playwright.async_api import Page, expect

from gateway.sessions import cookies
from tests.dashboard.conftest import axe, installed, settled, shoot
from tests.dashboard.offline import worker_ready
from tests.people import audit_of, person

WAITING = "#offline-queue"
SYNC = "/api/v1/integrations/sync-offline"


def network_errors_dropped(errors: list[str]) -> list[str]:
    """The page's errors but those of the cut network itself: Chromium logs each request that
    found no connection ("Failed to load resource: net::ERR_..."), and each 503 the service
    worker answers for what it has no copy of (a page opened offline asks GET /api/v1/me for
    its CSRF token before it knows it is offline)."""
    return [e for e in errors if not CUT.search(e)]


CUT = re.compile(r"Failed to load resource: (net::ERR_|the server responded with a status of 503)")


async def back_online(page: Page) -> None:
    """The network is back: the page's /healthz probe finds it within its back-off (up to 15 s);
    the test asks it now instead of waiting."""
    await page.evaluate(
        """async () => {
          const shell = [...document.scripts].find((s) => s.src.endsWith('/js/shell.js'))
          const { probe } = await import(new URL('connection.js', shell.src).href)
          await probe()
        }"""
    )


async def flushed(page: Page) -> None:
    """The page's sending of its queue (at load, or on the connection's return) is over: a
    flush of its own waits for the one under way (they share a Web Lock)."""
    await page.evaluate(
        """async () => {
          const shell = [...document.scripts].find((s) => s.src.endsWith('/js/shell.js'))
          const { flush } = await import(new URL('offline_queue.js', shell.src).href)
          await flush()
        }"""
    )


async def stored(page: Page) -> list[dict]:
    """Every item in this browser's offline queue, whoever's: owner, state, sent."""
    return await page.evaluate(
        """() => new Promise((resolve, reject) => {
          const open = indexedDB.open('seedos-offline-queue')
          open.onerror = () => reject(open.error)
          open.onsuccess = () => {
            const all = open.result.transaction('items').objectStore('items').getAll()
            all.onsuccess = () => resolve(all.result.map((i) => ({
              owner: i.owner, state: i.state, sent: i.sent, path: i.path, body: i.body})))
          }
        })"""
    )


async def contacts_with(crm: httpx.AsyncClient, email: str) -> int:
    found = (await crm.get("/v1/contacts", params={"limit": 1000})).json()["results"]
    return sum(1 for c in found if c["email"] == email)


async def replayed(dsn: str, seat, iid: str) -> list[dict]:
    """The offline.replayed audit entries for this install's items, by client and number."""
    rows = await audit_of(dsn, seat.tenant.tenant_id, "offline.replayed")
    return [r["payload"] for r in rows if iid in r["payload"]["path"]]


def crm_client(dash) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=dash.rig.crm.url, headers={"X-API-Key": dash.rig.crm_key})


async def integration_page(dash, signed_in, net, **options) -> tuple:
    """A person behind the cuttable network on a new install's page: (seat, install id)."""
    seat = await signed_in(proxy={"server": net.server}, **options)
    iid = await installed(dash, seat)
    await seat.goto(f"/integrations/{iid}")
    await settled(seat.page)
    return seat, iid


async def run_action(page: Page, email: str) -> None:
    await page.locator("#action-create_contact-email").fill(email)
    await page.get_by_role("button", name="Run create_contact").click()
    await expect(page.locator("#actions-body .notice")).to_have_text(
        "Saved on this device; sent when the connection returns."
    )


async def test_offline_changes_are_applied_once_and_refusals_reviewed(
    dash, signed_in, net, dsn
) -> None:
    seat = await signed_in(proxy={"server": net.server})
    iid = await installed(dash, seat)
    base = f"/api/v1/integrations/{iid}"
    page = seat.page
    await seat.goto(f"/integrations/{iid}")
    await worker_ready(page)
    await page.reload()  # kept by the service worker from now on, to be opened offline
    await settled(page)
    good = f"offline-{secrets.token_hex(4)}@example.com"

    net.cut()
    # a config change, made against the ETag the page read
    await page.get_by_label("Page size").fill("250")
    await page.get_by_role("button", name="Save settings").click()
    queued = "Saved on this device; sent when the connection returns."
    await expect(page.locator("#page-notice")).to_have_text(queued)
    await expect(page.locator("#connection")).to_contain_text("You are offline.")
    # disable and enable, a check
    await page.get_by_role("button", name="Disable").click()
    await expect(page.locator("#summary .badge").first).to_have_text("disabled")
    await page.get_by_role("button", name="Enable").click()
    await page.get_by_role("button", name="Check now").click()
    await expect(page.locator("#page-notice")).to_have_text(queued)
    # an action the connector refuses (too short an email), then a good one
    await run_action(page, "ab")
    await run_action(page, good)
    note = page.locator(WAITING)
    await expect(note).to_contain_text("6 changes wait to be sent when the connection returns.")
    await axe(page, "offline queue, waiting")
    await shoot(page, "offline-queue-waiting")
    # opened again without the connection: what waits is still there
    await page.reload()
    await expect(page.get_by_role("heading", level=1)).to_have_text(dash.slug)
    await expect(note).to_contain_text("6 changes wait to be sent when the connection returns.")

    # meanwhile, on the other side of the cut, someone changes the settings
    seen = await seat.api.get(base)
    r = await seat.api.patch(
        base,
        json={"config": {"base_url": dash.rig.crm.url, "page_size": 300}},
        headers={"if-match": seen.headers["etag"]},
    )
    assert r.status_code == 200, r.text
    async with crm_client(dash) as crm:
        assert await contacts_with(crm, good) == 0

        net.restore()
        await back_online(page)
        await expect(note).to_have_text(
            "2 changes were not applied: review them.Review", timeout=20_000
        )
        # each applied once, in order; the conflict kept the other side's change
        assert await contacts_with(crm, good) == 1
        assert await contacts_with(crm, "ab") == 0
    entries = await replayed(dsn, seat, iid)
    assert [(e["seq"], e["outcome"]) for e in sorted(entries, key=lambda e: e["seq"])] == [
        (1, "conflict"), (2, "applied"), (3, "applied"), (4, "applied"), (5, "rejected"),
        (6, "applied"),
    ]  # fmt: skip
    install = (await seat.api.get(base)).json()
    assert install["config"]["page_size"] == 300 and install["status"] != "disabled"

    # the review: the conflict with the current state, the refused action with its reason
    await page.get_by_role("button", name="Review").click()
    dialog = page.get_by_role("dialog", name="Changes made on this device")
    await expect(dialog).to_be_visible()
    items = dialog.locator(".offline-item")
    await expect(items).to_have_count(2)
    conflict = items.filter(has_text="Change the settings")
    await expect(conflict).to_contain_text("conflict")
    await expect(conflict).to_contain_text("Someone changed it after you saw it")
    refused = items.filter(has_text="Run the action create_contact")
    await expect(refused).to_contain_text("not applied")
    await axe(page, "offline queue, review")
    await conflict.get_by_role("button", name="Edit and retry").click()
    compare = conflict.locator("table.offline-compare")
    await expect(compare.locator("tr", has_text="page_size")).to_contain_text("250")
    await expect(compare.locator("tr", has_text="page_size")).to_contain_text("300")
    await axe(page, "offline queue, conflict edited")
    await shoot(page, "offline-queue-review")

    # discard the refused action (after a confirmation)
    await refused.get_by_role("button", name="Discard").click()
    await page.locator("#confirm-dialog-confirm").click()
    await expect(items).to_have_count(1)
    # edit and retry the conflict: sent with the current ETag, applied
    await conflict.get_by_role("button", name="Edit and retry").click()
    await conflict.get_by_role("button", name="Send again").click()
    await expect(dialog).to_contain_text("Nothing waits on this device", timeout=20_000)
    assert (await seat.api.get(base)).json()["config"]["page_size"] == 250
    entries = await replayed(dsn, seat, iid)
    assert [e["outcome"] for e in entries].count("applied") == 5
    await page.keyboard.press("Escape")
    await expect(note).to_be_hidden()
    await expect(page.get_by_role("button", name="Review")).to_have_count(0)
    assert network_errors_dropped(seat.errors) == []


async def test_the_same_items_sent_twice_apply_once(dash, signed_in, net, dsn) -> None:
    seat, iid = await integration_page(dash, signed_in, net)
    page = seat.page
    other = await seat.context.new_page()  # a second tab: the same queue
    await other.goto(page.url)
    await settled(other)
    sent: list[str] = []
    for tab in (page, other):
        tab.on("request", lambda r: sent.append(r.post_data) if r.url.endswith(SYNC) else None)
    email = f"twice-{secrets.token_hex(4)}@example.com"

    net.cut()
    await run_action(page, email)
    await expect(other.locator(WAITING)).to_contain_text("1 change waits")
    net.restore()
    await back_online(page)
    await back_online(other)
    await flushed(page)
    await flushed(other)
    await expect(page.locator(WAITING)).to_be_hidden()
    await expect(other.locator(WAITING)).to_be_hidden()
    assert len(sent) == 1  # one tab sent, the other found nothing left

    # the same request again, as the page would send it: every item a duplicate
    again = await page.evaluate(
        """async (body) => {
          const token = document.querySelector('meta[name="csrf-token"]').content
          const r = await fetch('/api/v1/integrations/sync-offline', {method: 'POST', body,
            headers: {'content-type': 'application/json', 'x-csrf-token': token}})
          return (await r.json()).results.map((x) => x.outcome)
        }""",
        sent[0],
    )
    assert again == ["duplicate"]
    async with crm_client(dash) as crm:
        assert await contacts_with(crm, email) == 1
    assert [e["outcome"] for e in await replayed(dsn, seat, iid)] == ["applied"]
    assert network_errors_dropped(seat.errors) == []


async def test_a_queue_waits_for_its_own_person(dash, signed_in, net, dsn) -> None:
    seat, iid = await integration_page(dash, signed_in, net)
    page = seat.page
    email = f"mine-{secrets.token_hex(4)}@example.com"
    net.cut()
    await run_action(page, email)
    await page.close()
    net.restore()

    async def sign_in_as(who) -> Page:
        await seat.context.clear_cookies()
        await seat.context.add_cookies([{
            "name": cookies.SESSION, "value": who.secret, "path": "/", "secure": True,
            "domain": urlsplit(dash.gateway).hostname, "httpOnly": True, "sameSite": "Lax",
        }])  # fmt: skip
        tab = await seat.context.new_page()
        tab.on("console", lambda m: seat.errors.append(m.text) if m.type == "error" else None)
        return tab

    # another person of the tenant, on the same browser: nothing of the first one's
    b = await person(dash.gateway, dsn, seat.tenant, "admin")
    tab = await sign_in_as(b)
    sent: list[str] = []
    tab.on("request", lambda r: sent.append(r.url) if r.url.endswith(SYNC) else None)
    await tab.goto(f"{seat.person.origin}/integrations/{iid}")
    await settled(tab)
    await flushed(tab)
    await expect(tab.locator(WAITING)).to_be_hidden()
    await expect(tab.get_by_role("button", name="Review")).to_have_count(0)
    assert sent == []
    kept = await stored(tab)
    assert [(i["state"], i["sent"]) for i in kept] == [("waiting", False)]
    assert kept[0]["owner"] == f"{seat.person.user_id}:{seat.tenant.tenant_id}"
    async with crm_client(dash) as crm:
        assert await contacts_with(crm, email) == 0
    assert await replayed(dsn, seat, iid) == []
    await axe(tab, "offline queue, another person's page")
    await tab.close()

    # the first person again: sent once
    tab = await sign_in_as(seat.person)
    await tab.goto(f"{seat.person.origin}/integrations/{iid}")
    await settled(tab)
    await flushed(tab)
    async with crm_client(dash) as crm:
        assert await contacts_with(crm, email) == 1
    assert [e["outcome"] for e in await replayed(dsn, seat, iid)] == ["applied"]
    assert await stored(tab) == []
    assert network_errors_dropped(seat.errors) == []


async def test_two_settings_changes_offline_are_one(dash, signed_in, net) -> None:
    """Settings changed twice in a row while offline, both against the ETag the page read: the
    second joins the first while it waits unsent at the end of the queue, so the person's own
    first change is no conflict. One made after something else (a check) is not joined: that
    would move it ahead of the check (it conflicts with the first instead, as documented)."""
    seat, iid = await integration_page(dash, signed_in, net)
    page = seat.page
    queued = "Saved on this device; sent when the connection returns."

    async def page_size(size: str) -> None:
        await page.get_by_label("Page size").fill(size)
        await page.get_by_role("button", name="Save settings").click()
        await expect(page.locator("#page-notice")).to_have_text(queued)

    net.cut()
    await page_size("250")
    await page_size("300")
    await expect(page.locator(WAITING)).to_contain_text("1 change waits")
    await page.get_by_role("button", name="Check now").click()
    await expect(page.locator(WAITING)).to_contain_text("2 changes wait")
    await page_size("350")
    order = [(i["path"].rsplit("/", 1)[-1], (i["body"] or {}).get("config", {}).get("page_size"))
             for i in await stored(page)]  # fmt: skip
    assert order == [(iid, 300), ("check", None), (iid, 350)], order
    net.restore()
    await back_online(page)
    await flushed(page)
    await expect(page.locator(WAITING)).to_contain_text("1 change was not applied")
    assert [i["state"] for i in await stored(page)] == ["conflict"]
    r = await seat.api.get(f"/api/v1/integrations/{iid}")
    assert r.json()["config"]["page_size"] == 300
    assert network_errors_dropped(seat.errors) == []


ACT = """async ([path, body]) => {
  const shell = [...document.scripts].find((s) => s.src.endsWith('/js/shell.js'))
  const { act } = await import(new URL('api.js', shell.src).href)
  return await act({ method: 'POST', path, body })
}"""

PROBE_AND_FLUSH = """async () => {
  const shell = [...document.scripts].find((s) => s.src.endsWith('/js/shell.js'))
  const { probe } = await import(new URL('connection.js', shell.src).href)
  const { flush } = await import(new URL('offline_queue.js', shell.src).href)
  await probe()
  await flush()
}"""


def nested(depth: int) -> object:
    body: object = "leaf"
    for _ in range(depth):
        body = {"k": body}
    return body


async def test_refusals_stay_refusals(dash, signed_in, net, dsn) -> None:
    """Three ways a refusal could pass for something else: its first answer lost on the way
    (sent again, the server answers `duplicate` with the first, refused, answer); an item fine
    alone that makes the whole batch too deep (refused before any item is read: the batch is
    halved down to that item, refused alone, and the rest go on); an install edited in review
    to carry credentials (refused on the device: secrets never wait there)."""
    seat, iid = await integration_page(dash, signed_in, net, service_workers="block")
    base = f"/api/v1/integrations/{iid}"
    page = seat.page
    net.cut()
    for path, body in (
        (f"{base}/actions/no_such_action", {}),  # refused: its first answer will be lost
        (f"{base}/actions/create_contact", {"input": nested(29)}),  # too deep in a batch
        (f"{base}/check", None),  # fine: applied after both
        ("/api/v1/integrations", {"connector": "no-such-connector"}),  # refused: no such one
    ):
        assert (await page.evaluate(ACT, [path, body]))["queued"] is True
    answers: list[tuple[int, list]] = []

    async def lose_the_first_answer(route) -> None:
        response = await route.fetch()  # the gateway answers...
        results = (await response.json()).get("results") if response.status == 200 else None
        answers.append((response.status, [(r["outcome"], r["status"]) for r in results or []]))
        if response.status == 200 and sum(status == 200 for status, _ in answers) == 1:
            await route.abort()  # ...but the first batch it ran never hears of it
        else:
            await route.fulfill(response=response)

    await page.route("**" + SYNC, lose_the_first_answer)
    net.restore()
    for _ in range(10):  # each round: the page finds the server again and sends what waits
        await page.evaluate(PROBE_AND_FLUSH)
        if {i["state"] for i in await stored(page)} <= {"rejected", "conflict"}:
            break
    ran = [results for status, results in answers if status == 200]
    assert ran[:2] == [[("rejected", 404)], [("duplicate", 404)]], answers  # lost, then again
    states = sorted((i["path"].rsplit("/", 1)[-1], i["state"]) for i in await stored(page))
    assert states == [("create_contact", "rejected"), ("integrations", "rejected"),
                      ("no_such_action", "rejected")], states  # fmt: skip
    await expect(page.locator(WAITING)).to_contain_text("3 changes were not applied")
    checks = [e for e in await replayed(dsn, seat, iid) if e["path"].endswith("/check")]
    assert [e["outcome"] for e in checks] == ["applied"]  # the one behind them went through
    # an install edited to carry credentials is refused on the device
    refused = await page.evaluate(
        """async () => {
          const shell = [...document.scripts].find((s) => s.src.endsWith('/js/shell.js'))
          const queue = await import(new URL('offline_queue.js', shell.src).href)
          const install = (await queue.list()).find((i) => i.path === '/api/v1/integrations')
          try {
            await queue.retry(install.id, { connector: 'x', credentials: { api_key: 'sk-secret' } })
            return null
          } catch (e) { return e.message }
        }"""
    )
    assert refused and "credentials" in refused
    assert "sk-secret" not in str(await stored(page))
    assert network_errors_dropped(seat.errors) == []
