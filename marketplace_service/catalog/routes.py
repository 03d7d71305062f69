from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from common.db import ReadDb
from common.errors import PROBLEM_RESPONSES
from common.internal_auth import CurrentPrincipal, requires
from common.pagination import DEFAULT_LIMIT, CursorParam, Limit
from common.roles import Permission
from marketplace_service.catalog import service
from marketplace_service.catalog.repository import Filters
from marketplace_service.catalog.schemas import (
    AuthScheme,
    CatalogEntryDetail,
    CatalogPage,
    Verification,
)
from marketplace_service.catalog.service import Sort

NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: refused here as 422, not a 500 there
router = APIRouter(
    prefix="/api/v1/marketplace",
    tags=["marketplace"],
    dependencies=[requires(Permission.read)],
    responses=PROBLEM_RESPONSES,
)
Slug = Annotated[str, Path(max_length=63, pattern=r"^[a-z0-9-]+$")]


@router.get("/connectors", response_model=CatalogPage)
async def list_connectors(
    db: ReadDb,
    principal: CurrentPrincipal,
    request: Request,
    q: Annotated[
        str | None,
        Query(max_length=200, pattern=NO_NUL, description="Words to search for (prefixes match)"),
    ] = None,
    category: Annotated[str | None, Query(max_length=50, pattern=NO_NUL)] = None,
    auth_scheme: AuthScheme | None = None,
    featured: bool | None = None,
    installed: Annotated[
        bool | None, Query(description="Only entries your tenant has (true) or lacks (false)")
    ] = None,
    verification: Annotated[
        Verification | None,
        Query(description="Only entries known to work this far: verified, checked or described"),
    ] = None,
    sort: Annotated[Sort | None, Query(description="Default: relevance with q, else name")] = None,
    cursor: CursorParam = None,
    limit: Limit = DEFAULT_LIMIT,
) -> dict:
    """Search and browse the catalog, one page at a time, with per-category counts."""
    filters = Filters(
        tenant_id=principal.tenant_id, category=category, auth_scheme=auth_scheme,
        featured=featured, installed=installed, verification=verification,
    )  # fmt: skip
    async with request.app.state.db.spare() as spare:
        return await service.search(
            db, filters=filters, q=q, sort=sort, cursor=cursor, limit=limit,
            vocabulary=request.app.state.vocabulary, facets=request.app.state.facets,
            spare=spare,
        )  # fmt: skip


@router.get("/connectors/{slug}", response_model=CatalogEntryDetail)
async def get_connector(slug: Slug, db: ReadDb, principal: CurrentPrincipal) -> dict:
    """One catalog entry: config schema, scopes, setup steps, version, the manifest (auth,
    streams, actions) and your tenant's installs of it."""
    return await service.get_entry(db, slug, tenant_id=principal.tenant_id)
