from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response

from common import idempotency
from common.crypto import KeyRing
from common.db import Database, Db, ReadDb
from common.errors import PROBLEM_RESPONSES
from common.internal_auth import CurrentPrincipal, requires
from common.pagination import DEFAULT_LIMIT, CursorParam, Limit
from common.roles import Permission
from connector_service.integrations import calls, service
from connector_service.integrations.preconditions import (
    IfMatchHeader,
    PreconditionFailed,
    etag_of,
)
from connector_service.integrations.schemas import (
    CredentialsIn,
    CredentialsOut,
    InstallOut,
    IntegrationCreate,
    IntegrationOut,
    IntegrationPage,
    IntegrationUpdate,
    SetupProgressIn,
    Status,
)
from connector_service.manager.manager import ConnectorManager

router = APIRouter(
    prefix="/api/v1/integrations",
    tags=["integrations"],
    dependencies=[requires(Permission.read)],
    responses=PROBLEM_RESPONSES,
)


async def _keyring(request: Request) -> KeyRing:
    return request.app.state.keyring


async def _manager(request: Request) -> ConnectorManager:
    return request.app.state.manager


Ring = Annotated[KeyRing, Depends(_keyring)]
Manager = Annotated[ConnectorManager, Depends(_manager)]
Writer = [requires(Permission.write)]
_PROBLEM = PROBLEM_RESPONSES[404]["content"]
_ETAG = {"ETag": {"description": "The install's ETag (changes with its settings only)",
                  "schema": {"type": "string"}}}  # fmt: skip
_ANSWER_WITH_ETAG = {200: {"headers": _ETAG}}
_PRECONDITION = {
    **_ANSWER_WITH_ETAG,
    400: {"description": "A malformed If-Match (`invalid_if_match`)", "content": _PROBLEM},
    412: {"description": "If-Match does not match the install's ETag (`precondition_failed`):"
                         " nothing changed; `current` is the install now, its ETag the header's",
          "headers": _ETAG, "content": _PROBLEM},
}  # fmt: skip


def _out(manager: ConnectorManager, row: dict) -> dict:
    return {**row, "circuit": manager.circuit(row["id"])}


def _one(response: Response, manager: ConnectorManager, row: dict) -> dict:
    """One install as answered, with its ETag in the header too."""
    response.headers["ETag"] = etag_of(row)
    return _out(manager, row)


@contextmanager
def _current_on_conflict(manager: ConnectorManager) -> Iterator[None]:
    """A failed If-Match answers with the install as GET shows it now (``current``)."""
    try:
        yield
    except PreconditionFailed as exc:
        shown = IntegrationOut.model_validate(_out(manager, exc.current))
        exc.extra["current"] = shown.model_dump(mode="json")
        raise


def _check_later(tasks: BackgroundTasks, request: Request, tenant_id: uuid.UUID,
                 integration_id: uuid.UUID) -> None:  # fmt: skip
    """Check the install once the response (and so the commit) is out."""
    state = request.app.state
    tasks.add_task(calls.check_in_background, state.db, state.manager, tenant_id, integration_id)


@router.get("", response_model=IntegrationPage)
async def list_integrations(
    db: ReadDb,
    principal: CurrentPrincipal,
    manager: Manager,
    status: Status | None = None,
    service_name: Annotated[str | None, Query(alias="service", max_length=100)] = None,
    cursor: CursorParam = None,
    limit: Limit = DEFAULT_LIMIT,
) -> dict:
    """The tenant's installed connectors, oldest first, one page at a time."""
    page = await service.list_integrations(
        db,
        tenant_id=principal.tenant_id,
        status=status.value if status else None,
        service_name=service_name,
        cursor=cursor,
        limit=limit,
    )
    page["items"] = [_out(manager, row) for row in page["items"]]
    return page


@router.get("/{integration_id}", response_model=IntegrationOut, responses=_ANSWER_WITH_ETAG)
async def get_integration(
    integration_id: uuid.UUID, db: ReadDb, principal: CurrentPrincipal, manager: Manager,
    response: Response,
) -> dict:  # fmt: skip
    """One install: its status (with the reason and last error) and its circuit. The ``ETag``
    header (also ``etag`` in the body) changes when its settings change, not its status: send
    it in ``If-Match`` to change or uninstall it only if nobody changed it since."""
    row = await service.get_integration(
        db, tenant_id=principal.tenant_id, integration_id=integration_id
    )
    return _one(response, manager, row)


@router.post("/{integration_id}/check", response_model=IntegrationOut, dependencies=Writer)
async def check_integration(
    integration_id: uuid.UUID, request: Request, principal: CurrentPrincipal, manager: Manager,
    response: Response,
) -> dict:  # fmt: skip
    """Call the connector's check now (with the install's config and credentials) and return
    the install with the outcome: ``active``, or ``error`` with the reason and last error."""
    database: Database = request.app.state.db
    await calls.check(database, manager, principal.tenant_id, integration_id)
    async with database.connection() as conn:
        row = await service.get_integration(
            conn, tenant_id=principal.tenant_id, integration_id=integration_id
        )
    return _one(response, manager, row)


@router.post(
    "", response_model=InstallOut, status_code=201, dependencies=Writer,
    responses={409: {"description": "Installed already (single instance), or the first request"
                                    " with this Idempotency-Key is still running"}},
)  # fmt: skip
async def create_integration(
    body: IntegrationCreate, principal: CurrentPrincipal, ring: Ring, manager: Manager,
    request: Request, tasks: BackgroundTasks, idempotency_key: idempotency.KeyHeader = None,
) -> Response:  # fmt: skip
    """Install a catalog connector with its config and credentials. A 422 lists every problem
    with the config, credentials and scopes; a 409 means a single-instance connector is
    installed already. Nothing is stored unless everything is valid. The install starts
    ``pending``; its connector is checked right after (``active`` or ``error``). With an
    Idempotency-Key a repeat gets the first answer (``Idempotent-Replayed: true``) instead of
    a second install: retry with the same key when an answer was lost. The answer carries the
    catalog entry's ``verification`` level and, for a connector written from documentation
    only (``described``), a ``notice`` saying it was not checked against the provider."""
    database: Database = request.app.state.db

    async def create() -> idempotency.Answer:
        async with database.connection() as conn, conn.transaction():
            row = await service.create(
                conn, ring, tenant_id=principal.tenant_id, actor=principal.subject,
                slug=body.connector, connector_name=body.connector_name, config=body.config,
                credentials=body.credentials, scopes=body.scopes, request_id=principal.request_id,
            )  # fmt: skip
        # committed: the check runs once the response is out
        _check_later(tasks, request, principal.tenant_id, row["id"])
        out = InstallOut.model_validate(_out(manager, row)).model_dump(mode="json")
        return idempotency.Answer(201, out)

    answer = await idempotency.once(
        request, tenant_id=principal.tenant_id, scope="integrations.create",
        key=idempotency_key, body=body.model_dump(mode="json"), operation=create,
    )  # fmt: skip
    response = idempotency.respond(answer)
    if answer.status == 201 and "etag" in answer.body:
        response.headers["ETag"] = answer.body["etag"]
    return response


@router.patch(
    "/{integration_id}",
    response_model=IntegrationOut,
    dependencies=Writer,
    responses=_PRECONDITION,
)
async def update_integration(
    integration_id: uuid.UUID, body: IntegrationUpdate, db: Db, principal: CurrentPrincipal,
    manager: Manager, request: Request, tasks: BackgroundTasks, response: Response,
    if_match: IfMatchHeader = None,
) -> dict:  # fmt: skip
    """Change the name or the config; a new config is checked against the connector again.
    With ``If-Match`` (ETags from GET, or ``*``) the change applies only if the install's
    settings are unchanged since: otherwise 412 ``precondition_failed`` with the install as it
    is now in ``current`` and its ``ETag``, and nothing changed."""
    with _current_on_conflict(manager):
        row = await service.update(
            db, tenant_id=principal.tenant_id, integration_id=integration_id,
            actor=principal.subject, config=body.config, connector_name=body.connector_name,
            request_id=principal.request_id, sync_interval_seconds=body.sync_interval_seconds,
            if_match=if_match,
        )  # fmt: skip
    if body.config is not None:
        _check_later(tasks, request, principal.tenant_id, row["id"])
    return _one(response, manager, row)


@router.put("/{integration_id}/setup-progress", response_model=IntegrationOut, dependencies=Writer)
async def put_setup_progress(
    integration_id: uuid.UUID, body: SetupProgressIn, db: Db, principal: CurrentPrincipal,
    manager: Manager, response: Response,
) -> dict:  # fmt: skip
    """Keep which steps of the connector's setup guide are done for this install (the
    dashboard's checklist; the same on every device): ``done`` lists every step done now, as
    indices into the catalog entry's ``setup_steps`` (0 for the first), and replaces what was
    stored. The install comes back with ``setup_done`` (ascending, each once), as GET shows it.
    Editors and admins; repeating the same request changes nothing."""
    row = await service.set_setup_progress(
        db, tenant_id=principal.tenant_id, integration_id=integration_id,
        actor=principal.subject, done=body.done, request_id=principal.request_id,
    )  # fmt: skip
    return _one(response, manager, row)


@router.post("/{integration_id}/disable", response_model=IntegrationOut, dependencies=Writer)
async def disable_integration(
    integration_id: uuid.UUID, db: Db, principal: CurrentPrincipal, manager: Manager,
    response: Response,
) -> dict:  # fmt: skip
    """Stop calling the connector; the install, its config and credentials are kept."""
    row = await service.set_enabled(
        db, tenant_id=principal.tenant_id, integration_id=integration_id,
        actor=principal.subject, enabled=False, request_id=principal.request_id,
    )  # fmt: skip
    return _one(response, manager, row)


@router.post("/{integration_id}/enable", response_model=IntegrationOut, dependencies=Writer)
async def enable_integration(
    integration_id: uuid.UUID, db: Db, principal: CurrentPrincipal, manager: Manager,
    request: Request, tasks: BackgroundTasks, response: Response,
) -> dict:  # fmt: skip
    """Use it again: ``pending`` until the check that follows."""
    row = await service.set_enabled(
        db, tenant_id=principal.tenant_id, integration_id=integration_id,
        actor=principal.subject, enabled=True, request_id=principal.request_id,
    )  # fmt: skip
    _check_later(tasks, request, principal.tenant_id, row["id"])
    return _one(response, manager, row)


@router.delete(
    "/{integration_id}",
    status_code=204,
    dependencies=Writer,
    responses={k: v for k, v in _PRECONDITION.items() if k != 200},
)
async def delete_integration(
    integration_id: uuid.UUID, db: Db, principal: CurrentPrincipal, ring: Ring, request: Request,
    manager: Manager, if_match: IfMatchHeader = None,
) -> Response:  # fmt: skip
    """Uninstall: OAuth tokens are revoked at the provider where it supports that, the install,
    its credentials and its sync state (document, log, cursors, outbox, runs) are erased, and
    the removal audited. With ``If-Match`` only if its settings are unchanged since (412
    ``precondition_failed`` as for PATCH, nothing removed)."""
    with _current_on_conflict(manager):
        await service.delete(
            db, ring, tenant_id=principal.tenant_id, integration_id=integration_id,
            actor=principal.subject, request_id=principal.request_id,
            oauth=request.app.state.oauth, if_match=if_match,
        )  # fmt: skip
    request.app.state.sync_store.forget_install(integration_id)
    return Response(status_code=204)


@router.get("/{integration_id}/credentials", response_model=CredentialsOut)
async def get_credentials(
    integration_id: uuid.UUID, db: ReadDb, principal: CurrentPrincipal
) -> dict:
    """Which secret fields are set. Values never leave the service."""
    fields = await service.credential_fields(
        db, tenant_id=principal.tenant_id, integration_id=integration_id
    )
    return {"fields_set": fields}


@router.put("/{integration_id}/credentials", response_model=CredentialsOut, dependencies=Writer)
async def put_credentials(
    integration_id: uuid.UUID, body: CredentialsIn, db: Db, principal: CurrentPrincipal,
    ring: Ring, request: Request, tasks: BackgroundTasks,
) -> dict:  # fmt: skip
    """Set (or replace) secret fields: API keys, passwords. Stored encrypted; the connector is
    checked with them right after."""
    fields = await service.put_credentials(
        db, ring, tenant_id=principal.tenant_id, integration_id=integration_id,
        actor=principal.subject, credentials=body.credentials, request_id=principal.request_id,
    )  # fmt: skip
    _check_later(tasks, request, principal.tenant_id, integration_id)
    return {"fields_set": fields}
