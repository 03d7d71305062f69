"""Moving an install to its catalog entry's newer version (published through the marketplace).

Its own module (route, rule and its one statement) so that it stays out of the way of the rest
of the integrations code: the install's config, or a new one given here, is checked against the
new version's config schema (422 ``invalid_config`` listing every problem, nothing changed),
then the install records the new version, the change is audited and the connector is checked.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, BackgroundTasks, Body, Request
from pydantic import BaseModel, ConfigDict, Field

from common import audit
from common.db import Db
from common.errors import PROBLEM_RESPONSES, Conflict
from common.internal_auth import CurrentPrincipal, requires
from common.roles import Permission
from common.versions import newer
from connector_service.credentials import service as credentials_service
from connector_service.integrations import calls, repository, service
from connector_service.integrations import config as config_rules
from connector_service.integrations.schemas import IntegrationOut

router = APIRouter(
    prefix="/api/v1/integrations",
    tags=["integrations"],
    dependencies=[requires(Permission.write)],
    responses=PROBLEM_RESPONSES,
)


class UpgradeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] | None = Field(
        None, description="A config for the new version; absent: the current one must fit it"
    )


class UpToDate(Conflict):
    code, title = "up_to_date", "Already at the newest version"


@router.post("/{integration_id}/upgrade", response_model=IntegrationOut)
async def upgrade_integration(
    integration_id: uuid.UUID,
    db: Db,
    principal: CurrentPrincipal,
    request: Request,
    tasks: BackgroundTasks,
    body: Annotated[UpgradeIn | None, Body()] = None,
) -> dict:
    """Move the install to the newest published version of its connector (editor)."""
    row = await upgrade(
        db, tenant_id=principal.tenant_id, integration_id=integration_id,
        actor=principal.subject, config=body.config if body else None,
        request_id=principal.request_id,
    )  # fmt: skip
    state = request.app.state
    tasks.add_task(calls.check_in_background, state.db, state.manager, principal.tenant_id,
                   row["id"])  # fmt: skip
    return {**row, "circuit": state.manager.circuit(row["id"])}


async def upgrade(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    actor: str,
    config: dict[str, Any] | None,
    request_id: str | None = None,
) -> dict[str, Any]:
    # the row locked for this transaction: a concurrent config change waits, and is not lost
    await conn.execute(
        "SELECT 1 FROM integration_connectors WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
        tenant_id, integration_id,
    )  # fmt: skip
    current = await service.get_integration(
        conn, tenant_id=tenant_id, integration_id=integration_id
    )
    entry = await repository.catalog_entry_by_id(conn, current["marketplace_connector_id"])
    manifest = (entry or {}).get("manifest") or {}
    target = manifest.get("version")
    if not target or not newer(target, current["version"]):
        raise UpToDate(f"the install is at {current['version']}, the newest published version")
    new_config = current["config"] if config is None else config
    stored = await credentials_service.fields_set(
        conn, tenant_id=tenant_id, integration_id=integration_id
    )
    found = config_rules.problems(
        manifest.get("config_schema", {}), config=new_config, credentials={},
        stored_secrets=set(stored),
    )  # fmt: skip
    if found:
        raise service.InvalidConfig(
            f"{len(found)} problem(s) with this install under version {target}", errors=found
        )
    row = await conn.fetchrow(
        "UPDATE integration_connectors SET version = $3, config = $4"
        " WHERE tenant_id = $1 AND id = $2 RETURNING id",
        tenant_id, integration_id, target, new_config,
    )  # fmt: skip
    if row is None:
        raise service.IntegrationNotFound(f"no integration {integration_id} in this tenant")
    await audit.record(
        conn, tenant_id=tenant_id, actor=actor, action="integration.upgraded",
        target=f"integration:{integration_id}", request_id=request_id,
        payload={"integration_id": str(integration_id), "from_version": current["version"],
                 "to_version": target, "config_changed": config is not None},
    )  # fmt: skip
    return await service.get_integration(conn, tenant_id=tenant_id, integration_id=integration_id)
