"""Moving an install to a newer published version of its connector, the tenant's explicit act.

An install runs the version it installed (pinned: its endpoint, manifest and OAuth URLs) until
someone upgrades it here. ``GET .../upgrade`` previews what a move changes (hosts, scopes,
config fields, streams, actions) and whether the current config fits; ``POST .../upgrade``
moves to the newest version that is not withdrawn, or to ``to_version``. A version that sends
any of its uses (connector calls, OAuth token requests, revocation, sign-in) to another origin
than the install's version must be confirmed: ``to_version`` named and each new origin listed
in ``accept_hosts`` (409 ``confirmation_required`` otherwise, nothing changed). The config, or a
new one given here, is checked against the new version's config schema (422 ``invalid_config``
listing every problem, nothing changed); then the install records the new version, the change
is audited and the connector is checked.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, BackgroundTasks, Body, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from common import audit
from common.db import Db, ReadDb
from common.errors import PROBLEM_RESPONSES, Conflict, InvalidRequest
from common.internal_auth import CurrentPrincipal, requires
from common.roles import Permission
from common.versions import newer
from connector_service.credentials import service as credentials_service
from connector_service.integrations import calls, repository, service, versions
from connector_service.integrations import config as config_rules
from connector_service.integrations.preconditions import etag_of
from connector_service.integrations.schemas import IntegrationOut

router = APIRouter(
    prefix="/api/v1/integrations",
    tags=["integrations"],
    dependencies=[requires(Permission.read)],
    responses=PROBLEM_RESPONSES,
)


class UpgradeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] | None = Field(
        None, description="A config for the new version; absent: the current one must fit it"
    )
    to_version: str | None = Field(
        None, max_length=64, description="The version to move to; absent: the newest one"
    )
    accept_hosts: list[str] = Field(
        default_factory=list, max_length=50,
        description="The destinations the new version moves to (the preview's confirm_hosts,"
        " scheme://host:port), confirmed; needs to_version too",
    )  # fmt: skip


class UpToDate(Conflict):
    code, title = "up_to_date", "Already at the newest version"


class UnknownVersion(InvalidRequest):
    code, title = "unknown_version", "No such version to upgrade to"


class ConfirmationRequired(Conflict):
    code, title = "confirmation_required", "The new version sends to new hosts: confirm them"


@router.get("/{integration_id}/upgrade")
async def preview_upgrade(
    integration_id: uuid.UUID,
    db: ReadDb,
    principal: CurrentPrincipal,
    to_version: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """What upgrading the install would change (viewer): the versions it may move to, the
    destinations that change use by use (to be confirmed in ``accept_hosts``), scopes, config
    fields, streams and actions, and the problems the current config has under it."""
    current, pinned, target, candidates = await _versions(
        db, tenant_id=principal.tenant_id, integration_id=integration_id, to_version=to_version
    )
    base = {
        "integration_id": current["id"], "from_version": current["version"],
        "withdrawn": (pinned or {}).get("withdrawn_reason"),
        "available": [v["version"] for v in candidates],
    }  # fmt: skip
    if target is None:
        return {**base, "to_version": None, "up_to_date": True, "changes": None,
                "confirm_hosts": [], "config_problems": []}  # fmt: skip
    found = versions.changes(
        (pinned or {}).get("manifest") or {}, (pinned or {}).get("endpoint_url"),
        target["manifest"] or {}, target["endpoint_url"],
    )  # fmt: skip
    problems = await _config_problems(db, current, target, config=None)
    return {**base, "to_version": target["version"], "up_to_date": False, "changes": found,
            "confirm_hosts": versions.to_confirm(found), "config_problems": problems}  # fmt: skip


@router.post(
    "/{integration_id}/upgrade",
    response_model=IntegrationOut,
    dependencies=[requires(Permission.write)],
)
async def upgrade_integration(
    integration_id: uuid.UUID,
    db: Db,
    principal: CurrentPrincipal,
    request: Request,
    tasks: BackgroundTasks,
    response: Response,
    body: Annotated[UpgradeIn | None, Body()] = None,
) -> dict:
    """Move the install to the newest published version of its connector (editor); its
    settings change, and so its ETag."""
    body = body or UpgradeIn()
    row = await upgrade(
        db, tenant_id=principal.tenant_id, integration_id=integration_id,
        actor=principal.subject, config=body.config, to_version=body.to_version,
        accept_hosts=body.accept_hosts, request_id=principal.request_id,
    )  # fmt: skip
    state = request.app.state
    tasks.add_task(calls.check_in_background, state.db, state.manager, principal.tenant_id,
                   row["id"])  # fmt: skip
    response.headers["ETag"] = etag_of(row)
    return {**row, "circuit": state.manager.circuit(row["id"])}


async def upgrade(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    actor: str,
    config: dict[str, Any] | None,
    to_version: str | None = None,
    accept_hosts: list[str] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    # the row locked for this transaction: a concurrent config change waits, and is not lost
    await repository.lock(conn, tenant_id, integration_id)
    current, pinned, target, _ = await _versions(
        conn, tenant_id=tenant_id, integration_id=integration_id, to_version=to_version
    )
    if target is None:
        raise UpToDate(f"the install is at {current['version']}, the newest published version")
    found = versions.changes(
        (pinned or {}).get("manifest") or {}, (pinned or {}).get("endpoint_url"),
        target["manifest"] or {}, target["endpoint_url"],
    )  # fmt: skip
    confirm = versions.to_confirm(found)
    unconfirmed = sorted(set(confirm) - set(accept_hosts or []))
    if unconfirmed or (confirm and to_version != target["version"]):
        raise ConfirmationRequired(
            f"version {target['version']} sends to {', '.join(confirm)}, where"
            f" {current['version']} does not send the same things: to upgrade, give"
            f" to_version {target['version']!r} and list them in accept_hosts",
            hosts=confirm,
            to_version=target["version"],
        )
    problems = await _config_problems(conn, current, target, config=config)
    if problems:
        raise service.InvalidConfig(
            f"{len(problems)} problem(s) with this install under version {target['version']}",
            errors=problems,
        )
    new_config = current["config"] if config is None else config
    await repository.set_version(
        conn, tenant_id, integration_id, version=target["version"], config=new_config
    )
    await audit.record(
        conn, tenant_id=tenant_id, actor=actor, action="integration.upgraded",
        target=f"integration:{integration_id}", request_id=request_id,
        payload={"integration_id": str(integration_id), "from_version": current["version"],
                 "to_version": target["version"], "config_changed": config is not None,
                 "hosts_confirmed": confirm},
    )  # fmt: skip
    return await service.get_integration(conn, tenant_id=tenant_id, integration_id=integration_id)


async def _versions(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    integration_id: uuid.UUID,
    to_version: str | None,
) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None, list[dict[str, Any]]]:
    """The install, the version it runs, the one an upgrade moves it to (None: none newer) and
    every one it could move to. ``to_version`` must be a newer version that is not withdrawn
    (422 ``unknown_version``)."""
    current = await service.get_integration(
        conn, tenant_id=tenant_id, integration_id=integration_id
    )
    pinned = await repository.pinned_version(
        conn, current["marketplace_connector_id"], current["version"]
    )
    candidates = await _newer_versions(conn, current)
    if to_version is None:
        return current, _dict(pinned), candidates[0] if candidates else None, candidates
    chosen = next((v for v in candidates if v["version"] == to_version), None)
    if chosen is None:
        raise UnknownVersion(
            f"{to_version!r} is not a published version newer than {current['version']} that"
            " its publisher has not withdrawn",
            available=[v["version"] for v in candidates],
        )
    return current, _dict(pinned), chosen, candidates


async def _newer_versions(conn: asyncpg.Connection, current: dict[str, Any]) -> list[dict]:
    """The versions an install may move to, newest first."""
    rows = await repository.live_versions(conn, current["marketplace_connector_id"])
    return [
        dict(r)
        for r in rows
        if current["version"] is None or newer(r["version"], current["version"])
    ]


async def _config_problems(
    conn: asyncpg.Connection,
    current: dict[str, Any],
    target: dict[str, Any],
    *,
    config: dict[str, Any] | None,
) -> list[dict[str, str]]:
    stored = await credentials_service.fields_set(
        conn, tenant_id=current["tenant_id"], integration_id=current["id"]
    )
    return config_rules.problems(
        (target["manifest"] or {}).get("config_schema", {}),
        config=current["config"] if config is None else config, credentials={},
        stored_secrets=set(stored),
    )  # fmt: skip


def _dict(row: asyncpg.Record | None) -> dict[str, Any] | None:
    return None if row is None else dict(row)
