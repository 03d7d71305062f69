"""The tenant's anomaly alerts: listed, counted and acknowledged."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from common.db import Db, ReadDb
from common.errors import PROBLEM_RESPONSES
from common.internal_auth import CurrentPrincipal, requires
from common.pagination import DEFAULT_LIMIT, CursorParam, Limit
from common.roles import Permission
from connector_service.alerts import service
from connector_service.alerts.schemas import AlertOut, AlertPage, AlertSummary, StateFilter

# Included before the integrations router, whose /{integration_id} would take "alerts" as an id.
router = APIRouter(
    prefix="/api/v1/integrations/alerts",
    tags=["alerts"],
    dependencies=[requires(Permission.read)],
    responses=PROBLEM_RESPONSES,
)


@router.get("", response_model=AlertPage)
async def list_alerts(
    db: ReadDb,
    principal: CurrentPrincipal,
    state: StateFilter = StateFilter.open,
    integration_id: uuid.UUID | None = None,
    cursor: CursorParam = None,
    limit: Limit = DEFAULT_LIMIT,
) -> dict:
    """The tenant's alerts, newest first (by when they opened), one page at a time: open ones
    by default, ``state=resolved`` or ``all``, of one install with ``integration_id``."""
    return await service.list_alerts(
        db, tenant_id=principal.tenant_id, state=state.value, integration_id=integration_id,
        cursor=cursor, limit=limit,
    )  # fmt: skip


@router.get("/summary", response_model=AlertSummary)
async def summary(db: ReadDb, principal: CurrentPrincipal) -> dict:
    """How many of the tenant's alerts are open, by severity (the dashboard's badge)."""
    return await service.summary(db, tenant_id=principal.tenant_id)


@router.post("/{alert_id}/ack", response_model=AlertOut,
             dependencies=[requires(Permission.write)])  # fmt: skip
async def acknowledge(alert_id: uuid.UUID, db: Db, principal: CurrentPrincipal) -> dict:
    """Acknowledge an alert: someone is on it. Idempotent (the first acknowledgement stays);
    the alert still resolves by itself when its metric is back."""
    return await service.acknowledge(
        db, tenant_id=principal.tenant_id, alert_id=alert_id, actor=principal.subject,
        request_id=principal.request_id,
    )  # fmt: skip
