from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse

from common.db import ReadDb
from common.errors import PROBLEM_RESPONSES
from common.internal_auth import CurrentPrincipal, requires
from common.pagination import DEFAULT_LIMIT, CursorParam, Limit
from common.roles import Permission
from marketplace_service.catalog import reference, reference_markdown, service
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


MARKDOWN = "text/markdown"


@router.get(
    "/connectors/{slug}/reference",
    response_model=reference.Reference,
    responses={200: {"content": {MARKDOWN: {"schema": {"type": "string"}}}}},
)
async def get_reference(
    slug: Slug, db: ReadDb, response: Response, accept: Annotated[str | None, Header()] = None
) -> object:
    """What a tenant gets before installing, generated from the entry's manifest: streams with
    their fields, keys, cursors, writes and deletions; actions with their input and output;
    OAuth scopes; the config an install fills in; the provider's webhooks. As Markdown with
    ``Accept: text/markdown``."""
    found = await reference.get_reference(db, slug)
    if prefers(accept or "", MARKDOWN):
        return PlainTextResponse(reference_markdown.render(found), headers={"vary": "accept"},
                                 media_type=f"{MARKDOWN}; charset=utf-8")  # fmt: skip
    response.headers["vary"] = "accept"
    return found


def prefers(accept: str, offer: str, *, over: str = "application/json") -> bool:
    """Whether ``accept`` ranks ``offer`` above ``over`` (RFC 9110 section 12.5.1: each by its
    most specific matching range; a tie goes to the more specific match, then to ``over``)."""
    ranked = [_rank(accept, media) for media in (offer, over)]
    return ranked[0][0] > 0 and ranked[0] > ranked[1]


def _rank(accept: str, media: str) -> tuple[float, int]:
    """(quality, specificity) of the most specific range of ``accept`` matching ``media``."""
    kind = media.split("/")[0]
    best = (0.0, -1)
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        name = fields[0].lower()
        specificity = (
            2 if name == media else 1 if name == f"{kind}/*" else 0 if name == "*/*" else -1
        )
        if specificity < 0 or specificity < best[1]:
            continue
        quality = 1.0
        for param in fields[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        best = (quality, specificity)
    return best
