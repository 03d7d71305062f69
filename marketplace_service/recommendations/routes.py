from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from common.db import ReadDb
from common.errors import PROBLEM_RESPONSES
from common.internal_auth import CurrentPrincipal, requires
from common.roles import Permission
from marketplace_service.recommendations.engine import RecommendationEngine
from marketplace_service.recommendations.schemas import Recommendations

router = APIRouter(
    prefix="/api/v1/marketplace",
    tags=["marketplace"],
    dependencies=[requires(Permission.read)],
    responses=PROBLEM_RESPONSES,
)


async def get_engine(request: Request) -> RecommendationEngine:
    return request.app.state.recommendations


Engine = Annotated[RecommendationEngine, Depends(get_engine)]


@router.get("/recommendations", response_model=Recommendations)
async def recommendations(
    db: ReadDb,
    principal: CurrentPrincipal,
    engine: Engine,
    k: Annotated[int, Query(ge=1, le=50, description="How many to return")] = 10,
) -> dict:
    """Connectors the caller's tenant has not installed, best first, each with a score and the
    reasons for it (see the README's Recommendations section)."""
    return await engine.for_tenant(db, principal.tenant_id, k=k)
