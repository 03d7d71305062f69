from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from common.db import ReadDb
from common.errors import PROBLEM_RESPONSES
from common.internal_auth import requires
from common.pagination import DEFAULT_LIMIT, CursorParam, Limit
from common.roles import Permission
from marketplace_service.catalog import service
from marketplace_service.catalog.schemas import CatalogEntryDetail, CatalogPage

router = APIRouter(
    prefix="/api/v1/marketplace",
    tags=["marketplace"],
    dependencies=[requires(Permission.read)],
    responses=PROBLEM_RESPONSES,
)


@router.get("/connectors", response_model=CatalogPage)
async def list_connectors(
    db: ReadDb,
    category: Annotated[str | None, Query(max_length=50)] = None,
    featured: bool | None = None,
    cursor: CursorParam = None,
    limit: Limit = DEFAULT_LIMIT,
) -> dict:
    """The connector catalog in name order, one page at a time."""
    return await service.list_entries(
        db, category=category, featured=featured, cursor=cursor, limit=limit
    )


@router.get("/connectors/{slug}", response_model=CatalogEntryDetail)
async def get_connector(
    slug: Annotated[str, Path(max_length=63, pattern=r"^[a-z0-9-]+$")], db: ReadDb
) -> dict:
    """One catalog entry with its manifest (config JSON Schema, auth, streams, actions)."""
    return await service.get_entry(db, slug)
