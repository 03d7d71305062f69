"""The audit log page: the trail with people's names, filters kept in the URL that narrow it,
"Load more" moving focus to the first new row, the CSV download holding the rows, the empty
state, and an editor refused in words (without the nav item); axe in both themes."""

from __future__ import annotations

import csv
import io
import re
from urllib.parse import parse_qs, urlsplit

from playwright.async_api import expect

from common import audit
from common.roles import Role
from tests.dashboard.conftest import axe, settled, shoot
from tests.support import connected


async def test_the_trail_filtered_paged_and_exported(signed_in, dsn) -> None:
    seat = await signed_in()
    page = seat.page
    made = []
    for name in ("deploy", "backup"):
        r = await seat.api.post("/api/v1/api-keys", json={"name": name, "role": "viewer"})
        made.append(r.json())
    assert (await seat.api.delete(f"/api/v1/api-keys/{made[0]['id']}")).status_code == 200
    async with connected(dsn) as conn, conn.transaction():
        for i in range(55):
            await audit.record(conn, tenant_id=seat.tenant.tenant_id, actor="system:test",
                               action="test.bulk", payload={"n": i})  # fmt: skip

    await seat.goto("/audit")
    await expect(page.get_by_role("heading", level=1, name="Audit log")).to_be_visible()
    rows = page.locator("#entries tbody tr")
    await expect(rows).to_have_count(50)
    await settled(page)
    await axe(page, "audit log")
    await shoot(page, "audit")

    # Load more: the rest, focus on the first new row
    await page.get_by_role("button", name="Load more").click()
    await expect(rows).to_have_count(55 + 2 + 1 + 2 + 1)  # + keys, revoke, tenant's key, tenant
    await expect(page.locator("#entries tbody tr").nth(50)).to_be_focused()
    await expect(page.get_by_role("button", name="Load more")).to_be_hidden()

    # the filters narrow it and stay in the URL
    await page.get_by_label("Action family").select_option("api_key.")
    await page.get_by_role("button", name="Apply filters").click()
    await expect(rows).to_have_count(4)  # 2 made, 1 revoked, the tenant's test key
    revoked = rows.filter(has_text="api_key.revoked")
    await expect(revoked).to_have_count(1)
    await expect(revoked).to_contain_text(f"api_key:{made[0]['id']}")
    await expect(rows.first).to_contain_text("API key “test”")  # the actor by name
    query = parse_qs(urlsplit(page.url).query)
    assert query == {"action_prefix": ["api_key."]}
    await page.get_by_label("Exact action").fill("api_key.created")
    await page.get_by_label("From").fill("2020-01-01T00:00")
    await page.get_by_role("button", name="Apply filters").click()
    await expect(rows).to_have_count(3)
    query = parse_qs(urlsplit(page.url).query)
    assert re.fullmatch(r"2020-01-01T00:00:00[+-]\d\d:\d\d", query["since"][0]), query
    await page.reload()  # the URL holds the filters
    await expect(rows).to_have_count(3)
    await expect(page.get_by_label("From")).to_have_value("2020-01-01T00:00")
    await expect(page.get_by_label("Exact action")).to_have_value("api_key.created")

    # the CSV download: the same filters, every row
    export = page.get_by_role("link", name="Export CSV")
    assert "action=api_key.created" in (await export.get_attribute("href") or "")
    async with page.expect_download() as info:
        await export.click()
    download = await info.value
    assert re.fullmatch(r"audit-log-t-[0-9a-f]+-\d{8}T\d{6}Z\.csv", download.suggested_filename)
    text = (await download.path()).read_text(encoding="utf-8")
    got = list(csv.DictReader(io.StringIO(text, newline="")))
    assert sorted(r["target"] for r in got) == sorted(
        [f"api_key:{k['id']}" for k in made] + [f"api_key:{seat.tenant.key_id}"]
    )
    assert {r["action"] for r in got} == {"api_key.created"}
    # the export is in the trail, audited with its filters
    r = await seat.api.get("/api/v1/audit-logs", params={"action": "audit_log.exported"})
    assert r.json()["items"][0]["payload"]["filters"]["action"] == "api_key.created"

    # nothing matches: the empty state says what to do
    await page.get_by_label("Target").fill("integration:nothing-here")
    await page.get_by_role("button", name="Apply filters").click()
    await expect(page.get_by_role("heading", name="No entries match these filters")).to_be_visible()
    await expect(page.get_by_role("link", name="Clear the filters")).to_have_attribute(
        "href", "/audit"
    )
    await axe(page, "audit log, empty")
    await shoot(page, "audit-empty")

    await page.get_by_role("button", name="Dark theme").click()
    await page.get_by_role("link", name="Clear the filters").click()
    await expect(rows).to_have_count(50)
    await settled(page)
    await page.locator("#entries details summary").first.click()
    await axe(page, "audit log, dark, details open")
    await shoot(page, "audit-dark")
    assert seat.errors == []


async def test_an_editor_is_refused_in_words(signed_in) -> None:
    seat = await signed_in(role=Role.editor)
    page = seat.page
    await seat.goto("/")
    nav = page.get_by_role("navigation", name="Main")
    await expect(nav.get_by_role("link", name="Settings")).to_be_visible()
    await expect(nav.get_by_role("link", name="Audit log")).to_have_count(0)
    await seat.goto("/audit")
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text("Only admins can read the audit log.")
    await expect(alert.locator(".request-id")).not_to_be_empty()
    await expect(page.get_by_role("link", name="Export CSV")).to_have_count(0)
    await axe(page, "audit log, refused")
    await shoot(page, "audit-refused")
    assert seat.errors == []
