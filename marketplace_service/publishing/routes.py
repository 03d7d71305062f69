from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response

from common.errors import PROBLEM_RESPONSES
from common.internal_auth import CurrentPrincipal, Principal, requires
from common.roles import Permission
from marketplace_service.catalog import service as catalog
from marketplace_service.catalog.schemas import CatalogEntryDetail
from marketplace_service.publishing import service
from marketplace_service.publishing.schemas import PublishIn

router = APIRouter(
    prefix="/api/v1/marketplace",
    tags=["marketplace"],
    dependencies=[requires(Permission.publish)],
    responses=PROBLEM_RESPONSES,
)


@router.post(
    "/connectors",
    response_model=CatalogEntryDetail,
    status_code=201,
    responses={200: {"description": "A newer version of your entry", "model": CatalogEntryDetail},
               409: {"description": "The version is not newer, or the name is taken"}},
)  # fmt: skip
async def publish_connector(
    body: PublishIn, request: Request, response: Response, principal: CurrentPrincipal
) -> dict:
    """Publish a deployed connector (publisher role): its manifest and endpoint URL. 201 for a
    new entry, 200 for a higher semantic version of your own entry, 409 for a version that is
    not higher, 403 for an entry another tenant (or the platform) published, 422 listing every
    problem with the manifest, or ``endpoint_not_allowed`` for an address the suite may not
    call."""
    entry, created = await store(request, body, principal)
    response.status_code = 201 if created else 200
    return entry


async def store(
    request: Request, body: PublishIn, principal: Principal,
    also: Callable[[Any], Awaitable[None]] | None = None,
) -> tuple[dict, bool]:  # fmt: skip
    """Check and publish ``body`` (``also`` runs in the same transaction); the entry, and
    whether it is new."""
    settings = request.app.state.settings
    await service.check(body, connector=settings.endpoint_policy(), egress=settings.egress_policy())
    async with request.app.state.db.connection() as db, db.transaction():
        slug, created = await service.publish(db, body, principal=principal)
        if also is not None:
            await also(db)
        entry = await catalog.get_entry(db, slug, tenant_id=principal.tenant_id)
    request.app.state.vocabulary.add(entry["id"], entry["name"], entry["vendor"], entry["category"])
    request.app.state.facets.changed()  # before the notification comes: counts from SQL till read
    return entry, created
