"""``POST /api/v1/integrations/sync-offline``: the gateway answers it itself, the one path under
``/api/v1/integrations`` it does not forward (with each sync ticket, see
:class:`gateway.app.GatewayApp`)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from common.errors import PROBLEM_RESPONSES
from common.roles import Permission
from gateway.deps import CurrentPrincipal, require
from gateway.offline import service
from gateway.offline.schemas import BatchResult, OfflineBatch

router = APIRouter(prefix="/api/v1/integrations", tags=["offline"], responses=PROBLEM_RESPONSES)
PATH = "/api/v1/integrations/sync-offline"


@router.post("/sync-offline", response_model=BatchResult, dependencies=[require(Permission.read)])
async def sync_offline(
    batch: OfflineBatch, request: Request, response: Response, principal: CurrentPrincipal
) -> BatchResult:
    """Replay work queued offline: an ordered batch of at most 500 items, each
    `{client_id, seq, idempotency_key, client_ts, method, path, body, if_match}`, where
    `method` and `path` name one of the operations that may be queued (install, `PATCH`,
    enable, disable, check, an action, a sync run, setup progress, uninstall: see the README).
    Each runs as that API call with the caller's credential, its Idempotency-Key and If-Match,
    once, in sequence order per client. Every item gets a result: `applied` (with the answer),
    `duplicate` (the first answer), `rejected` (a permanent 4xx, with the problem), `conflict`
    (its If-Match failed, with the current state), `retry_later`, `out_of_sequence` (an
    earlier number is missing: held, with `expected_seq`) or `not_attempted`. A transient
    failure stops the batch there: `retry_after` and the `Retry-After` header say when to send
    the rest again. Each completed item is audited as `offline.replayed` with the client's
    timestamp. The items' own roles apply: a viewer's changes are `rejected` (403). Each item
    run costs one request of the caller's rate limits: when they run out, the batch stops
    there with `retry_later` and `Retry-After`."""
    replayer = service.replayer(request.app.state, principal, request.scope)
    result = await replayer.batch(batch.items)
    if result.retry_after is not None:
        response.headers["retry-after"] = str(result.retry_after)
    return result
