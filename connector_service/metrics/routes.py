from __future__ import annotations

import uuid
from datetime import UTC, datetime
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


@router.get("/metrics")
async def metrics(
    integration_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    step: Annotated[int | None, Query(ge=1, description="seconds, at least 60")] = None,
) -> dict[str, Any]:
    """The install's calls to its connector per step: calls, errors, error rate and latency
    percentiles (p50, p95, p99, ms), every step of the window listed (``from`` defaults to 24
    hours before ``to``, ``to`` to now; at most 31 days and 1,000 steps)."""
    database = request.app.state.db
    target = await calls.load_target(database, principal.tenant_id, integration_id)
    start_at, end_at, size = service.window(start, end, step, now=datetime.now(UTC))
    async with database.connection() as conn:
        return await service.history(conn, target.id, start=start_at, end=end_at, step=size)
