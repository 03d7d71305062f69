from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from common.db import Pool, ReadDb
from common.errors import PROBLEM_RESPONSES
from common.pagination import DEFAULT_LIMIT, CursorParam, Limit
from common.roles import Permission
from gateway.audit_logs import export, service
from gateway.audit_logs.schemas import AuditLogPage, Filters
from gateway.deps import CurrentPrincipal, require

_COLUMN_DOCS = "\n".join(f"- `{name}`: {what}" for name, what in export.COLUMNS)
router = APIRouter(prefix="/api/v1/audit-logs", tags=["audit-logs"], responses=PROBLEM_RESPONSES)


def _text(description: str) -> object:
    return Query(min_length=1, max_length=200, description=description)


def _time(description: str) -> object:
    return Query(description=f"{description} (ISO 8601 with a UTC offset, e.g. 2026-11-26T09:00Z)")


async def _filters(
    action: Annotated[str | None, _text("Exactly this action, e.g. `api_key.created`")] = None,
    action_prefix: Annotated[
        str | None, _text("Actions starting with this, e.g. `integration.`")
    ] = None,
    actor: Annotated[str | None, _text("Only this actor, e.g. `apikey:<id>`")] = None,
    target: Annotated[str | None, _text("Only entries about this, e.g. `integration:<id>`")] = None,
    since: Annotated[AwareDatetime | None, _time("At or after this time")] = None,
    until: Annotated[AwareDatetime | None, _time("Before this time")] = None,
) -> Filters:
    """The list's and the export's filters: each a documented query parameter."""
    return Filters(action, action_prefix, actor, target, since, until)


AuditFilters = Annotated[Filters, Depends(_filters)]


# Admins only: the trail names every key and member of the tenant and what each did.
@router.get("", response_model=AuditLogPage, dependencies=[require(Permission.manage)])
async def list_audit_logs(
    db: ReadDb,
    principal: CurrentPrincipal,
    filters: AuditFilters,
    cursor: CursorParam = None,
    limit: Limit = DEFAULT_LIMIT,
) -> dict:
    """The caller's tenant's audit trail, newest first, one page at a time."""
    return await service.list_entries(
        db, tenant_id=principal.tenant_id, filters=filters, cursor=cursor, limit=limit
    )


_EXPORT_DOC = f"""The caller's tenant's audit trail as a CSV download (admins),
with the filters of the list: every matching entry, newest first, streamed as it is read.

One export holds at most {service.EXPORT_MAX_ROWS:,} entries, the newest that match;
`X-Export-Truncated: true` says more matched (narrow `until` for the older ones). The file is
UTF-8, comma-separated, CRLF line ends, quoted as RFC 4180 says, with a header row. A cell a
spreadsheet would run as a formula (one starting with `=`, `+`, `-`, `@`, tab or carriage
return) starts with an apostrophe. Each export is audited as `audit_log.exported` with its
filters (it lists itself when they match).

Columns:

{_COLUMN_DOCS}
"""


@router.get(
    "/export.csv",
    description=_EXPORT_DOC,
    response_class=StreamingResponse,
    dependencies=[require(Permission.manage)],
    responses={
        200: {
            "description": "The matching entries as CSV, newest first",
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "headers": {
                "X-Export-Truncated": {
                    "description": "`true` when more entries matched than one export holds",
                    "schema": {"type": "string", "enum": ["true", "false"]},
                },
            },
        }
    },
)
async def export_audit_logs(
    pool: Pool, principal: CurrentPrincipal, filters: AuditFilters
) -> StreamingResponse:
    async with pool.connection() as conn, conn.transaction():
        truncated = await service.start_export(
            conn, tenant_id=principal.tenant_id, filters=filters, actor=principal.subject,
            request_id=principal.request_id,
        )  # fmt: skip
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"audit-log-{principal.tenant_slug or 'tenant'}-{stamp}.csv"
    return StreamingResponse(
        export.stream(pool, tenant_id=principal.tenant_id, filters=filters),
        media_type="text/csv; charset=utf-8",
        headers={
            "content-disposition": f'attachment; filename="{name}"',
            "x-export-truncated": "true" if truncated else "false",
            "cache-control": "no-store",
        },
    )
