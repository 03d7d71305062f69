"""The tenant's outbound webhooks: endpoints (admins change them, anyone reads), their
signing secrets (shown once), deliveries with every attempt, replays and test events."""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from common.db import Db, ReadDb
from common.endpoints import EndpointPolicy
from common.errors import PROBLEM_RESPONSES
from common.internal_auth import CurrentPrincipal, Principal, requires
from common.pagination import decode_cursor, encode_cursor
from common.roles import Permission, allows
from connector_service.integrations.routes import Ring
from connector_service.outbound import repository, service
from connector_service.outbound.events import EVENT_TYPES
from connector_service.outbound.schemas import (
    AttemptOut,
    DeliveryList,
    DeliveryOut,
    EndpointChange,
    EndpointCreated,
    EndpointDetail,
    EndpointIn,
    EndpointList,
    EndpointOut,
    Queued,
    Rotated,
    SecretOut,
)

router = APIRouter(
    prefix="/api/v1/webhooks",
    tags=["webhooks"],
    dependencies=[requires(Permission.read)],
    responses=PROBLEM_RESPONSES,
)
Admin = [requires(Permission.manage)]


async def _policy(request: Request) -> EndpointPolicy:
    return request.app.state.outbound_policy


async def _grace(request: Request) -> float:
    return request.app.state.outbound_grace_seconds


Policy = Annotated[EndpointPolicy, Depends(_policy)]
Grace = Annotated[float, Depends(_grace)]


def _shown(row: Any, principal: Principal) -> EndpointOut:
    """An endpoint as the caller may see it: whole for those who manage it, its URL's query
    values (which may carry the receiver's token) masked for everyone else."""
    out = EndpointOut.of(row)
    if not allows(principal.role, Permission.manage):
        out.url = service.masked_url(out.url)
    return out


@router.get("")
async def list_endpoints(db: ReadDb, principal: CurrentPrincipal) -> EndpointList:
    """The tenant's endpoints, and the event types there are."""
    rows = await repository.list_endpoints(db, principal.tenant_id)
    return EndpointList(items=[_shown(r, principal) for r in rows], event_types=list(EVENT_TYPES))


@router.post("", status_code=201, dependencies=Admin)
async def create_endpoint(
    body: EndpointIn, db: Db, principal: CurrentPrincipal, ring: Ring, policy: Policy
) -> EndpointCreated:
    """A new endpoint; its signing secret is in this answer and never again. A URL outside
    the egress rule (in production: anything but public addresses) is refused."""
    row, secret = await service.create(
        db, ring, policy, tenant_id=principal.tenant_id, actor=principal.subject, url=body.url,
        event_types=body.event_types, description=body.description,
    )  # fmt: skip
    return EndpointCreated(**EndpointOut.of(row).model_dump(), secret=secret)


@router.get("/{endpoint_id}")
async def get_endpoint(
    endpoint_id: uuid.UUID, db: ReadDb, principal: CurrentPrincipal
) -> EndpointDetail:
    row = await service.get(db, principal.tenant_id, endpoint_id)
    secrets = await repository.secrets_summary(db, endpoint_id)
    return EndpointDetail(
        **_shown(row, principal).model_dump(), secrets=[SecretOut(**dict(s)) for s in secrets]
    )


@router.patch("/{endpoint_id}", dependencies=Admin)
async def update_endpoint(
    endpoint_id: uuid.UUID, body: EndpointChange, db: Db, principal: CurrentPrincipal,
    policy: Policy,
) -> EndpointOut:  # fmt: skip
    """Change the URL, event types, description, or enable/disable (disabling cancels what is
    pending; enabling starts afresh)."""
    row = await service.update(
        db, policy, tenant_id=principal.tenant_id, endpoint_id=endpoint_id,
        actor=principal.subject, changes=body.model_dump(exclude_unset=True),
    )  # fmt: skip
    return EndpointOut.of(row)


@router.delete("/{endpoint_id}", status_code=204, dependencies=Admin)
async def delete_endpoint(endpoint_id: uuid.UUID, db: Db, principal: CurrentPrincipal) -> Response:
    await service.delete(
        db, tenant_id=principal.tenant_id, endpoint_id=endpoint_id, actor=principal.subject
    )
    return Response(status_code=204)


@router.post("/{endpoint_id}/rotate", dependencies=Admin)
async def rotate_secret(
    endpoint_id: uuid.UUID, db: Db, principal: CurrentPrincipal, ring: Ring, grace: Grace
) -> Rotated:
    """A new signing secret, in this answer only. The previous one keeps signing beside it
    (two signatures in ``webhook-signature``) for the grace period, 24 h by default."""
    secret = await service.rotate(
        db, ring, tenant_id=principal.tenant_id, endpoint_id=endpoint_id,
        actor=principal.subject, grace_seconds=grace,
    )  # fmt: skip
    previous = [s["expires_at"] for s in await repository.secrets_summary(db, endpoint_id)]
    return Rotated(secret=secret, previous_expires_at=max(filter(None, previous), default=None))


@router.get("/{endpoint_id}/deliveries")
async def list_deliveries(
    endpoint_id: uuid.UUID, db: ReadDb, principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[str | None, Query(max_length=512, description=(
        "`next_before` of the previous page (a timestamp is taken too: what is older)"))] = None,
) -> DeliveryList:  # fmt: skip
    """The endpoint's deliveries, newest first (created_at, then id), each with its attempts."""
    await service.get(db, principal.tenant_id, endpoint_id)
    rows = await repository.list_deliveries(
        db, principal.tenant_id, endpoint_id, limit=limit, before=_before(before)
    )
    attempts: dict[uuid.UUID, list[AttemptOut]] = {}
    for a in await repository.attempts_of(db, [r["id"] for r in rows]):
        attempts.setdefault(a["delivery_id"], []).append(AttemptOut(**dict(a)))
    items = [
        DeliveryOut(**{**dict(r), "next_at": r["next_at"] if r["state"] == "pending" else None},
                    attempt_log=attempts.get(r["id"], []))
        for r in rows
    ]  # fmt: skip
    last = rows[-1] if len(rows) == limit else None
    cursor = encode_cursor([last["created_at"].isoformat(), last["id"]]) if last else None
    return DeliveryList(items=items, next_before=cursor)


def _before(before: str | None) -> tuple[datetime, uuid.UUID] | None:
    """The (created_at, id) a page goes on after: a cursor this API issued, or a bare
    timestamp (what ``next_before`` was until it became a cursor): everything older than it."""
    if before is None:
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(before), uuid.UUID(int=0)
    at, after = decode_cursor(before, parse=(datetime.fromisoformat, uuid.UUID))
    return at, after


@router.post("/{endpoint_id}/deliveries/{delivery_id}/replay", status_code=202, dependencies=Admin)
async def replay_delivery(
    endpoint_id: uuid.UUID, delivery_id: uuid.UUID, db: Db, principal: CurrentPrincipal
) -> Queued:
    """Send a delivery's event again, with the same ``webhook-id``, as a new delivery."""
    row = await repository.get_delivery(db, principal.tenant_id, delivery_id)
    if row is None or row["endpoint_id"] != endpoint_id:
        raise service.DeliveryNotFound(f"no delivery {delivery_id} of this endpoint")
    new = await service.replay(db, tenant_id=principal.tenant_id, delivery_id=delivery_id)
    return Queued(delivery_id=new, event_id=row["event_id"])


@router.post("/{endpoint_id}/test", status_code=202, dependencies=Admin)
async def send_test(endpoint_id: uuid.UUID, db: Db, principal: CurrentPrincipal) -> Queued:
    """Queue a ``webhook.test`` event to this endpoint only."""
    event_id, delivery_id = await service.send_test(
        db, tenant_id=principal.tenant_id, endpoint_id=endpoint_id
    )
    return Queued(delivery_id=delivery_id, event_id=event_id)
