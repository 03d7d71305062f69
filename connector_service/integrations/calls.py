"""Installed connectors as the ConnectorManager calls them, and the status that follows.

pending → active after a successful check; active ⇄ error when a check fails or a call's
credentials are refused, and when the circuit opens or closes again; disabled only by a user.
The reason and the last error are kept on the row. No database connection is held while a
connector is being called.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog

from common.crypto import KeyRing
from common.db import Database
from common.endpoints import EndpointNotAllowed
from common.errors import SeedosError
from connector_service.integrations import repository
from connector_service.integrations.service import NOT_CONNECTED, IntegrationNotFound
from connector_service.manager import errors
from connector_service.manager.manager import ConnectorManager, Target
from connector_service.oauth import errors as oauth_errors
from connector_service.oauth import tokens
from connector_service.oauth.config import OAuthConfig
from connector_service.outbound import events as outbound_events

log = structlog.get_logger(component="connector_service.calls")

CIRCUIT_REASON = "circuit open: "


async def load_target(db: Database, tenant_id: uuid.UUID, integration_id: uuid.UUID) -> Target:
    async with db.connection() as conn:
        row = await repository.call_target(conn, tenant_id, integration_id)
    if row is None:
        raise IntegrationNotFound(f"no integration {integration_id} in this tenant")
    return Target(
        id=row["id"], tenant_id=row["tenant_id"], connector_name=row["connector_name"],
        service_name=row["service_name"], status=row["status"], config=row["config"] or {},
        endpoint_url=row["endpoint_url"], manifest=row["manifest"] or {},
        version=row["version"], withdrawn=row["withdrawn_reason"],
    )  # fmt: skip


def credential_source(db: Database, ring: KeyRing, oauth: OAuthConfig) -> Any:
    """The manager's credentials for a call: decrypted just for it, OAuth tokens refreshed when
    they are about to expire or after the connector answered 401 to the ``rejected`` one."""

    async def source(target: Target, rejected: str | None) -> dict[str, str]:
        integration = {"id": target.id, "tenant_id": target.tenant_id, "config": target.config}
        return await tokens.call_credentials(
            db, ring, integration=integration, manifest=target.manifest,
            rejected=rejected, oauth=oauth,
        )  # fmt: skip

    return source


async def set_status(
    db: Database,
    target: Target,
    status: str,
    reason: str,
    *,
    last_error: str | None = None,
    only_from: str | None = None,
) -> None:
    """Move an install's status, never out of ``disabled`` (only a user does that); a change
    publishes ``integration.status_changed`` in the same transaction."""
    async with db.connection() as conn, conn.transaction():
        before = await repository.status_of(conn, target.tenant_id, target.id)
        changed = await repository.set_status(
            conn, target.tenant_id, target.id, status=status, reason=reason,
            last_error=last_error, only_from=only_from,
        )  # fmt: skip
        if changed and before != status:
            await outbound_events.publish(
                conn, tenant_id=target.tenant_id, type=outbound_events.INTEGRATION_STATUS_CHANGED,
                integration_id=target.id, data={"status": status, "previous": before,
                "reason": reason[:500], "connector_name": target.connector_name},
            )  # fmt: skip


def circuit_listener(db: Database) -> Any:
    async def on_circuit(target: Target, opened: bool, error: str) -> None:
        if opened:
            await set_status(db, target, "error", CIRCUIT_REASON + error, last_error=error)
        else:  # a call succeeded while the install was in error: it works again
            await set_status(db, target, "active", "working again: a call succeeded",
                             only_from="error")  # fmt: skip

    return on_circuit


async def check(
    db: Database, manager: ConnectorManager, tenant_id: uuid.UUID, integration_id: uuid.UUID
) -> None:
    """Call the connector's /check and record the outcome in the install's status."""
    target = await load_target(db, tenant_id, integration_id)
    if target.status == "disabled":
        raise errors.IntegrationDisabled(f"{target.connector_name} is disabled: enable it first")
    try:
        await manager.check(target)
    except errors.NotDeployed as exc:
        await set_status(db, target, "pending", str(exc.detail))
    except errors.CircuitOpen:
        raise
    except errors.UpdateRequired:
        return  # the install shows update_required, from its version; nothing was called
    except EndpointNotAllowed as exc:
        await set_status(db, target, "error", f"endpoint not allowed: {exc.detail}",
                         last_error=exc.detail)  # fmt: skip
    except errors.ConnectorAuthFailed as exc:
        await credentials_refused(db, target, exc)
    except errors.Busy:
        raise
    except errors.ConnectorCallError as exc:
        if manager.circuit(target.id)["state"] != "closed":
            return  # this failure opened the circuit, which put the install in error already
        await set_status(db, target, "error", f"{_classify(exc)}: {exc.detail}",
                         last_error=exc.detail)  # fmt: skip
    except oauth_errors.NotConnected:
        await set_status(db, target, "pending", NOT_CONNECTED)
    except SeedosError as exc:  # e.g. an OAuth refresh refused: its own code moved the status
        log.info("check_not_run", integration_id=str(target.id), code=exc.code)
    else:
        await set_status(db, target, "active", "check passed")


def _classify(exc: errors.ConnectorCallError) -> str:
    """How a failed check reads in ``status_reason``; the detail after it says no more than
    ``errors.said`` lets through (no answer body of an endpoint that is not a connector)."""
    if isinstance(exc, errors.ConnectorRejected):
        return "check failed"
    if isinstance(exc, errors.ConnectorTimeout):
        return "timeout"
    if isinstance(exc, errors.ConnectorUnavailable):
        return "unreachable"
    return "connector failed"


async def credentials_refused(
    db: Database, target: Target, exc: errors.ConnectorAuthFailed
) -> None:
    reason = "reconnect: " if target.auth_scheme == "oauth2" else "credentials refused: "
    await set_status(db, target, "error", reason + str(exc.detail), last_error=exc.detail)


async def check_in_background(
    db: Database, manager: ConnectorManager, tenant_id: uuid.UUID, integration_id: uuid.UUID
) -> None:
    """After an install or a change: check without making the caller wait, never raising."""
    try:
        await check(db, manager, tenant_id, integration_id)
    except Exception as exc:
        log.info("background_check_skipped", integration_id=str(integration_id),
                 error=type(exc).__name__)  # fmt: skip
