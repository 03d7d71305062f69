"""The Alerts page and the navigation's count of open alerts, in Chromium: an editor sees the
open alerts with their evidence in words, acknowledges one (focus on what changed), switches to
the resolved ones (kept in the URL); a viewer sees no control; a tenant without alerts has no
count and an empty state; axe in both themes, screenshots. The alerts are written where the
detector would write them (its detection through real faults: tests/connector_service/
test_alerts.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from playwright.async_api import expect

from common.roles import Role
from tests.dashboard.conftest import axe, installed, settled, shoot
from tests.people import person
from tests.support import connected

NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def _evidence(metric: str, observed: float, baseline: float, *, minutes_ago: int) -> dict:
    start = NOW - timedelta(minutes=minutes_ago)
    return {
        "metric": metric, "unit": "ms" if metric == "latency_p95" else "ratio",
        "baseline": baseline, "spread": baseline / 10, "baseline_kind": "seasonal",
        "baseline_windows": 84, "observed": observed, "observed_windows": [observed] * 3,
        "calls": [120, 118, 131], "threshold": baseline * 1.5, "critical_threshold": baseline * 2.5,
        "normal_threshold": baseline * 1.25, "window_start": start.isoformat(),
        "window_end": (start + timedelta(minutes=15)).isoformat(), "window_minutes": 5,
    }  # fmt: skip


def _no_data(*, minutes_ago: int) -> dict:
    """A resolution for want of data: an hour of windows without the calls to judge."""
    start = NOW - timedelta(minutes=minutes_ago)
    return {
        "metric": "error_ratio", "unit": "ratio", "reason": "no_data", "min_calls": 10,
        "calls": [3, 0, 1, 2, 0, 0, 4, 1, 0, 2, 1, 0], "window_start": start.isoformat(),
        "window_end": (start + timedelta(minutes=60)).isoformat(), "window_minutes": 5,
    }  # fmt: skip


async def _alerts(dsn: str, tenant_id: uuid.UUID, iid: str) -> dict[str, uuid.UUID]:
    rows = {
        "slow": ("latency_p95", "critical", "open", _evidence("latency_p95", 1240.0, 210.0,
                                                              minutes_ago=20), None),
        "failing": ("error_ratio", "warning", "open", _evidence("error_ratio", 0.12, 0.01,
                                                                minutes_ago=40), None),
        "old": ("latency_p95", "warning", "resolved", _evidence("latency_p95", 400.0, 200.0,
                minutes_ago=600), _evidence("latency_p95", 190.0, 200.0, minutes_ago=560)),
        "quiet": ("error_ratio", "warning", "resolved", _evidence("error_ratio", 0.3, 0.01,
                  minutes_ago=900), _no_data(minutes_ago=840)),
    }  # fmt: skip
    out = {}
    async with connected(dsn) as conn:
        for n, (name, (metric, severity, state, evidence, resolution)) in enumerate(rows.items()):
            at = NOW - timedelta(hours=n)
            out[name] = await conn.fetchval(
                "INSERT INTO connector_alerts (tenant_id, connector_id, metric, severity, state,"
                " opened_at, resolved_at, evidence, resolution)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                tenant_id, uuid.UUID(iid), metric, severity, state, at,
                at + timedelta(minutes=40) if state == "resolved" else None, evidence, resolution,
            )  # fmt: skip
    return out


async def test_alerts_listed_acknowledged_and_counted_in_the_navigation(dash, signed_in, dsn):
    seat = await signed_in(role=Role.editor)
    page = seat.page
    iid = await installed(dash, seat)
    ids = await _alerts(dsn, seat.tenant.tenant_id, iid)

    await seat.goto("/")
    count = page.locator("#alerts-count")
    await expect(count).to_be_visible()
    await expect(count).to_have_text("2 (2 open, 1 critical)")  # the number, and words for AT
    await expect(count).to_have_class("nav-count critical")

    await page.get_by_role("link", name="Alerts").click()
    await expect(page.get_by_role("heading", level=1, name="Alerts")).to_be_visible()
    cards = page.locator(".alert-card")
    await expect(cards).to_have_count(2)
    await settled(page)
    slow = page.locator(f"#alert-{ids['slow']}")
    await expect(slow.get_by_role("heading", level=3)).to_contain_text("Slow calls")
    await expect(slow).to_contain_text("Critical")
    await expect(slow).to_contain_text("Observed 1.2 s for the 95th percentile of call latency")
    await expect(slow).to_contain_text("where 210 ms is usual, give or take 21 ms")
    await expect(slow).to_contain_text("the same time of day on earlier days")
    await expect(slow).to_contain_text("An alert opens above 315 ms and is critical above 525 ms")
    await expect(slow).to_contain_text("369 calls")
    failing = page.locator(f"#alert-{ids['failing']}")
    await expect(failing).to_contain_text("Observed 12% for the share of calls that failed")
    await expect(failing).to_contain_text("Warning")
    await axe(page, "alerts, open")
    await shoot(page, "alerts-open")

    # acknowledged: the card says by whom, and focus goes there
    await slow.get_by_role("button", name="Acknowledge").click()
    note = page.locator(f"#alert-{ids['slow']} .acknowledged")
    await expect(note).to_contain_text("Acknowledged by")
    await expect(note).to_be_focused()
    r = await seat.api.get("/api/v1/integrations/alerts", params={"integration_id": iid})
    acked = {a["id"]: a for a in r.json()["items"]}[str(ids["slow"])]
    assert acked["acknowledged_at"] and acked["acknowledged_by"]
    await expect(page.locator(f"#alert-{ids['failing']}")).to_contain_text("Acknowledge")

    # the resolved ones, kept in the URL
    await page.get_by_label("Show").select_option("resolved")
    await expect(cards).to_have_count(2)
    quiet = page.locator(f"#alert-{ids['quiet']}")
    await expect(quiet).to_contain_text("Closed for want of data")
    await expect(quiet.get_by_role("button")).to_have_count(0)
    old = page.locator(f"#alert-{ids['old']}")
    await expect(old).to_contain_text("Resolved")
    await expect(old).to_contain_text("Back to 190 ms")
    await expect(old.get_by_role("button")).to_have_count(0)  # nothing to acknowledge now
    assert page.url.endswith("/alerts?state=resolved")
    await page.reload()
    await expect(page.locator(".alert-card")).to_have_count(2)
    await expect(page.get_by_label("Show")).to_have_value("resolved")
    await page.get_by_role("button", name="Dark theme").click()
    await settled(page)
    await axe(page, "alerts, resolved, dark")
    assert not seat.errors, seat.errors

    # a viewer of the same tenant: the alerts, no control
    viewer = await signed_in(
        role=Role.viewer, tenant=seat.tenant,
        who=await person(dash.gateway, dsn, seat.tenant, Role.viewer.value),
    )  # fmt: skip
    await viewer.goto("/alerts")
    await expect(viewer.page.locator(".alert-card")).to_have_count(2)
    await expect(viewer.page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    await expect(viewer.page.locator(f"#alert-{ids['failing']}")).to_contain_text(
        "Not acknowledged yet."
    )


async def test_a_tenant_without_alerts_has_no_count_and_an_empty_page(signed_in):
    seat = await signed_in(role=Role.admin)
    await seat.goto("/alerts")
    await expect(seat.page.get_by_role("heading", name="No open alerts")).to_be_visible()
    await expect(seat.page.locator("#alerts-count")).to_be_hidden()
    await axe(seat.page, "alerts, none")
    await shoot(seat.page, "alerts-empty")
    assert not seat.errors, seat.errors
