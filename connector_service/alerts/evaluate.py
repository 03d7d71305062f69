"""One evaluation of every active install: read the minute rollups, ask the detector, open,
escalate and resolve alerts (audited, published as events, counted).

The caller owns the transaction (the loop: one per evaluation, holding the advisory lock); each
install's changes run in a savepoint of it, so one install failing costs its own changes only.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog

from common import audit
from connector_service.alerts import detector, repository
from connector_service.alerts.detector import Decision, Rules
from connector_service.alerts.metrics import OPENED, set_open
from connector_service.outbound import events

log = structlog.get_logger(component="connector_service.alerts")
ACTOR = "system:alerts"
BATCH = 200  # installs read at once


@dataclass
class Outcome:
    installs: int = 0
    opened: list[uuid.UUID] = field(default_factory=list)
    escalated: list[uuid.UUID] = field(default_factory=list)
    resolved: list[uuid.UUID] = field(default_factory=list)
    failed: int = 0


def judged_span(now: datetime, rules: Rules, settle: timedelta) -> tuple[datetime, datetime]:
    """The windows an evaluation at ``now`` judges: the latest ``rules.judged`` windows that
    ended at least ``settle`` ago (the rollups have their minutes by then)."""
    end = detector.align(now - settle, rules.window_minutes)
    return end - rules.size * rules.judged, end


async def evaluate(
    conn: asyncpg.Connection, *, now: datetime, rules: Rules, settle: timedelta,
    integration_ids: Sequence[uuid.UUID] | None = None,
) -> Outcome:  # fmt: skip
    """Judge every install with calls in the trailing hours or an open alert (or only those of
    ``integration_ids``) at ``now``. The caller owns the transaction and holds the lock."""
    start, end = judged_span(now, rules, settle)
    outcome = Outcome()
    installs = await repository.active_installs(
        conn, since=start - timedelta(hours=rules.trailing_hours), only=integration_ids
    )
    for i in range(0, len(installs), BATCH):
        await _batch(conn, installs[i : i + BATCH], start, end, rules, now, outcome)
    set_open(await repository.open_counts(conn))
    return outcome


async def _batch(
    conn: asyncpg.Connection, installs: Sequence[asyncpg.Record], start: datetime,
    end: datetime, rules: Rules, now: datetime, outcome: Outcome,
) -> None:  # fmt: skip
    ids = [r["id"] for r in installs]
    history = _merged(detector.history_spans(start, rules))
    recent = end - rules.size * rules.span  # an open alert's windows without data reach back
    rows: dict[uuid.UUID, list[tuple]] = defaultdict(list)
    for r in await repository.minutes(conn, ids, _merged([*history, (min(recent, start), end)])):
        rows[r["connector_id"]].append((r["bucket"], r["calls"], r["errors"], r["records"],
                                        r["latency_index"], r["latency_count"]))  # fmt: skip
    alerts: dict[uuid.UUID, dict[str, asyncpg.Record]] = defaultdict(dict)
    for a in await repository.open_alerts(conn, ids):
        alerts[a["connector_id"]][a["metric"]] = a
    for install in installs:
        outcome.installs += 1
        mine = rows.get(install["id"], [])
        first = install["first_minute"]
        past: list[detector.Window] = []
        for lo, hi in history:
            if first is not None:
                lo = max(lo, detector.align(first, rules.window_minutes))
            if lo < hi:
                past += detector.windows(mine, start=lo, end=hi, minutes=rules.window_minutes)
        judged = detector.windows(mine, start=recent, end=end, minutes=rules.window_minutes)
        current = alerts[install["id"]]
        opened = {m: detector.Open.of(a["severity"], a["evidence"]) for m, a in current.items()}
        for metric, decision in detector.assess(past, judged, rules, opened).items():
            try:
                async with conn.transaction():  # a savepoint
                    await _apply(conn, install, metric, current.get(metric), decision, now,
                                 outcome)  # fmt: skip
            except Exception as exc:  # this install's change is lost, the others go on
                outcome.failed += 1
                log.warning("alert_change_failed", integration_id=str(install["id"]),
                            metric=metric, error=type(exc).__name__)  # fmt: skip


def _merged(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Spans without overlaps (a row in two would be counted twice), in order."""
    out: list[tuple[datetime, datetime]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


async def _apply(
    conn: asyncpg.Connection, install: asyncpg.Record, metric: str,
    current: asyncpg.Record | None, decision: Decision, now: datetime, outcome: Outcome,
) -> None:  # fmt: skip
    tenant_id, integration_id = install["tenant_id"], install["id"]
    if decision.action == "open":
        assert decision.severity is not None
        alert_id = await repository.insert(
            conn, tenant_id=tenant_id, integration_id=integration_id, metric=metric,
            severity=decision.severity, evidence=decision.evidence, at=now,
        )  # fmt: skip
        if alert_id is None:  # opened meanwhile (the lock makes this unexpected)
            return
        data = _event(alert_id, metric, decision.severity, "open", decision.evidence, now)
        await _record(conn, "alert.opened", tenant_id, integration_id, data)
        await events.publish(conn, tenant_id=tenant_id, type=events.ALERT_OPENED, data=data,
                             integration_id=integration_id)  # fmt: skip
        OPENED.labels(metric=metric, severity=decision.severity).inc()
        outcome.opened.append(alert_id)
        log.info("alert_opened", integration_id=str(integration_id), metric=metric,
                 severity=decision.severity)  # fmt: skip
    elif decision.action == "escalate":
        assert current is not None and decision.severity is not None
        if await repository.escalate(conn, current["id"], severity=decision.severity,
                                     evidence=decision.evidence):  # fmt: skip
            data = _event(current["id"], metric, decision.severity, "open", decision.evidence,
                          None)  # fmt: skip
            await _record(conn, "alert.escalated", tenant_id, integration_id, data)
            outcome.escalated.append(current["id"])
    else:
        assert current is not None
        if await repository.resolve(conn, current["id"], resolution=decision.evidence, at=now):
            data = _event(current["id"], metric, current["severity"], "resolved",
                          decision.evidence, None) | {"resolved_at": now.isoformat()}  # fmt: skip
            await _record(conn, "alert.resolved", tenant_id, integration_id, data)
            await events.publish(conn, tenant_id=tenant_id, type=events.ALERT_RESOLVED,
                                 data=data, integration_id=integration_id)  # fmt: skip
            outcome.resolved.append(current["id"])
            log.info("alert_resolved", integration_id=str(integration_id), metric=metric)


def _event(
    alert_id: uuid.UUID, metric: str, severity: str, state: str, evidence: dict[str, Any],
    opened_at: datetime | None,
) -> dict[str, Any]:  # fmt: skip
    data = {"alert_id": str(alert_id), "metric": metric, "severity": severity, "state": state,
            "evidence": evidence}  # fmt: skip
    if opened_at is not None:
        data["opened_at"] = opened_at.isoformat()
    return data


async def _record(
    conn: asyncpg.Connection, action: str, tenant_id: uuid.UUID, integration_id: uuid.UUID,
    data: dict[str, Any],
) -> None:  # fmt: skip
    await audit.record(
        conn, tenant_id=tenant_id, actor=ACTOR, action=action,
        target=f"integration:{integration_id}",
        payload={"integration_id": str(integration_id), **data},
    )  # fmt: skip
