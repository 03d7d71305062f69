from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from common.db import Db, ReadDb
from common.errors import PROBLEM_RESPONSES
from common.internal_auth import CurrentPrincipal, requires
from common.roles import Permission
from marketplace_service.catalog.routes import Slug
from marketplace_service.versions import service

router = APIRouter(
    prefix="/api/v1/marketplace/connectors/{slug}/versions",
    tags=["marketplace"],
    dependencies=[requires(Permission.read)],
    responses=PROBLEM_RESPONSES,
)
Version = Annotated[str, Path(max_length=64, pattern=r"^[0-9A-Za-z.+-]+$")]


class WithdrawIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=1, max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$",
        description="Shown to every install on the version (one line)",
    )  # fmt: skip


@router.get("")
async def list_versions(slug: Slug, db: ReadDb) -> dict[str, Any]:
    """Every published version of the entry, newest first, each as it was published (its
    manifest is immutable), with its withdrawal if its publisher withdrew it."""
    return {"items": await service.list_versions(db, slug)}


@router.get("/{version}")
async def get_version(slug: Slug, version: Version, db: ReadDb) -> dict[str, Any]:
    """One published version: manifest, endpoint host, when published, withdrawn or not."""
    return await service.get_version(db, slug, version)


@router.post("/{version}/withdraw", dependencies=[requires(Permission.publish)])
async def withdraw_version(
    slug: Slug, version: Version, body: WithdrawIn, db: Db, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Withdraw a version of your entry (publisher): installs on it show ``update_required``
    with your reason and are no longer called until their tenant upgrades them; new installs
    get the newest version that is not withdrawn. Nothing moves an install to another version."""
    reason = body.reason.strip()
    return await service.withdraw(db, slug, version, reason=reason, principal=principal)
