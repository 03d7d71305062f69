from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from common.errors import PROBLEM_RESPONSES
from common.internal_auth import CurrentPrincipal, requires
from common.roles import Permission
from connector_service.integrations import calls
from connector_service.metrics import service

router = APIRouter(
    prefix="/api/v1/integrations/{integration_id}",
    tags=["metrics"],
    dependencies=[requires(Permission.read)],
    responses=PROBLEM_RESPONSES,
)
# Included before the integrations router, whose /{integration_id} would take "metrics" for an id.
summary_router = APIRouter(
    prefix="/api/v1/integrations/metrics",
    tags=["metrics"],
    dependencies=[requires(Permission.read)],
    responses=PROBLEM_RESPONSES,
)
From = Annotated[datetime | None, Query(alias="from")]
To = Annotated[datetime | None, Query(alias="to")]


def _kept(request: Request) -> service.Kept:
    settings = request.app.state.settings
    return service.Kept(
        minutes=timedelta(days=settings.metrics_minute_retention_days),
        hours=timedelta(days=settings.metrics_hour_retention_days),
    )


@router.get("/metrics")
async def metrics(
    integration_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    start: From = None,
    end: To = None,
    step: Annotated[
        int | None,
        Query(ge=1, le=service.MAX_STEP_SECONDS, description="seconds, a whole number of minutes"),
    ] = None,
) -> dict[str, Any]:
    """The install's calls to its connector per step: calls, errors, error rate and latency
    percentiles (p50, p95, p99, ms, within 9%), every step of the window listed (``from``
    defaults to 24 hours before ``to``, ``to`` to now; ``from`` is rounded down to the minute,
    or to the hour for steps of whole hours). Steps under an hour reach back as far as the
    minute rollups are kept (30 days); steps of whole hours as far as the hour rollups (a
    year); at most 1,000 steps."""
    database = request.app.state.db
    target = await calls.load_target(database, principal.tenant_id, integration_id)
    start_at, end_at, size = service.window(
        start, end, step, now=datetime.now(UTC), kept=_kept(request)
    )
    async with database.connection() as conn:
        return await service.history(conn, target.id, start=start_at, end=end_at, step=size)


@summary_router.get("/summary")
async def summary(
    request: Request, principal: CurrentPrincipal, start: From = None, end: To = None
) -> dict[str, Any]:
    """Every install of the tenant over a window (``from``/``to`` as for an install's history,
    default the last 24 hours): calls, errors, error rate, latency percentiles (p50, p95, p99,
    ms) and records read or written; and the tenant's totals."""
    start_at, end_at = service.summary_window(
        start, end, now=datetime.now(UTC), kept=_kept(request)
    )
    async with request.app.state.db.connection() as conn:
        return await service.summary(conn, principal.tenant_id, start=start_at, end=end_at)
