from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse

from common.errors import PROBLEM_JSON, PROBLEM_RESPONSES, SeedosError
from common.internal_auth import CurrentPrincipal, requires
from common.roles import Permission
from connector_service.actions import service
from connector_service.integrations.schemas import ActionIn, ActionOut

router = APIRouter(
    prefix="/api/v1/integrations",
    tags=["actions"],
    dependencies=[requires(Permission.write)],
    responses={
        **PROBLEM_RESPONSES,
        409: {"description": "The first request with this Idempotency-Key is still running"},
    },
)
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


class IdempotencyKeyRequired(SeedosError):
    status, code, title = 400, "idempotency_key_required", "Idempotency-Key required"


@router.post("/{integration_id}/actions/{name}", response_model=ActionOut)
async def call_action(
    integration_id: uuid.UUID,
    name: Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")],
    body: ActionIn,
    request: Request,
    principal: CurrentPrincipal,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description="1 to 255 visible ASCII chars"),
    ] = None,
) -> JSONResponse:
    """Run one of the connector's actions. ``Idempotency-Key`` is required: the first answer
    (output or final refusal) is stored for at least 24 hours and replayed, with
    ``Idempotent-Replayed: true``, to a repeat with the same body; the same key with another
    body gives 422, and a repeat while the first still runs 409. A failure worth retrying (503,
    504) stores nothing: retry with the same key."""
    if not idempotency_key:
        raise IdempotencyKeyRequired("send an Idempotency-Key header (e.g. a random UUID)")
    if not _KEY.match(idempotency_key):
        raise IdempotencyKeyRequired(
            "the Idempotency-Key must be 1 to 255 visible ASCII characters",
            code="invalid_idempotency_key", title="Invalid Idempotency-Key",
        )  # fmt: skip
    state = request.app.state
    outcome = await service.run(
        state.db, state.manager, tenant_id=principal.tenant_id, integration_id=integration_id,
        action=name, data=body.input, key=idempotency_key, actor=principal.subject,
        request_id=principal.request_id, instance=request.url.path,
        ttl=timedelta(hours=state.settings.idempotency_ttl_hours),
    )  # fmt: skip
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    media = PROBLEM_JSON if outcome.status >= 400 else "application/json"
    return JSONResponse(outcome.body, status_code=outcome.status, headers=headers, media_type=media)
