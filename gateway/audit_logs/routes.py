from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from common.db import ReadDb
from common.errors import PROBLEM_RESPONSES
from common.pagination import DEFAULT_LIMIT, CursorParam, Limit
from common.roles import Permission
from gateway.audit_logs import service
from gateway.audit_logs.schemas import AuditLogPage
from gateway.deps import CurrentPrincipal, require

router = APIRouter(prefix="/api/v1/audit-logs", tags=["audit-logs"], responses=PROBLEM_RESPONSES)


def _text(description: str) -> object:
    return Query(min_length=1, max_length=200, description=description)


def _time(description: str) -> object:
    return Query(description=f"{description} (ISO 8601 with a UTC offset, e.g. 2026-11-26T09:00Z)")


# Admins only: the trail names every key and member of the tenant and what each did.
@router.get("", response_model=AuditLogPage, dependencies=[require(Permission.manage)])
async def list_audit_logs(
    db: ReadDb,
    principal: CurrentPrincipal,
    action: Annotated[str | None, _text("Exactly this action, e.g. `api_key.created`")] = None,
    action_prefix: Annotated[
        str | None, _text("Actions starting with this, e.g. `integration.`")
    ] = None,
    actor: Annotated[str | None, _text("Only this actor, e.g. `apikey:<id>`")] = None,
    target: Annotated[str | None, _text("Only entries about this, e.g. `integration:<id>`")] = None,
    since: Annotated[AwareDatetime | None, _time("At or after this time")] = None,
    until: Annotated[AwareDatetime | None, _time("Before this time")] = None,
    cursor: CursorParam = None,
    limit: Limit = DEFAULT_LIMIT,
) -> dict:
    """The caller's tenant's audit trail, newest first, one page at a time."""
    return await service.list_entries(
        db,
        tenant_id=principal.tenant_id,
        action=action,
        action_prefix=action_prefix,
        actor=actor,
        target=target,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )
