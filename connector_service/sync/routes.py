from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response

from common.db import Database
from common.errors import PROBLEM_RESPONSES, NotFound, PayloadTooLarge
from common.internal_auth import CurrentPrincipal, requires
from common.pagination import DEFAULT_LIMIT, CursorParam, Limit, decode_cursor, encode_cursor
from common.roles import Permission
from connector_service.integrations import calls
from connector_service.manager.manager import Target
from connector_service.sync import repository, service
from connector_service.sync.engine import NoStreams, SyncEngine, SyncRunning
from connector_service.sync.store import DocStore

router = APIRouter(
    prefix="/api/v1/integrations/{integration_id}",
    tags=["sync"],
    dependencies=[requires(Permission.read)],
    responses=PROBLEM_RESPONSES,
)
Writer = [requires(Permission.write)]
OCTETS = "application/octet-stream"
MAX_SYNC_BODY = 16 * 1024 * 1024
StreamName = Annotated[str, Query(min_length=1, max_length=100, pattern=r"^[^/]+$")]
StreamPath = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[^/]+$")]
KeyPath = Annotated[str, Path(min_length=1, max_length=500)]


class DeadLetterNotFound(NotFound):
    code, title = "dead_letter_not_found", "No such dead letter"


async def _target(
    integration_id: uuid.UUID, request: Request, principal: CurrentPrincipal
) -> Target:
    return await calls.load_target(request.app.state.db, principal.tenant_id, integration_id)


async def _store(request: Request) -> DocStore:
    return request.app.state.sync_store


async def _engine(request: Request) -> SyncEngine:
    return request.app.state.sync_engine


Installed = Annotated[Target, Depends(_target)]
Store = Annotated[DocStore, Depends(_store)]
Engine = Annotated[SyncEngine, Depends(_engine)]


# ---------------------------------------------------------------------- Yjs over HTTP


@router.get("/sync/state-vector", response_class=Response,
            responses={200: {"content": {OCTETS: {}}}})  # fmt: skip
async def state_vector(target: Installed, store: Store) -> Response:
    """The document's Yjs state vector (binary)."""
    async with store.session(target.id) as live:
        return Response(live.state_vector(), media_type=OCTETS)


@router.post("/sync", response_class=Response, dependencies=Writer,
             responses={200: {"content": {OCTETS: {}}}})  # fmt: skip
async def sync(
    target: Installed, store: Store, request: Request, principal: CurrentPrincipal
) -> Response:
    """One round trip: the body is the client's state vector and update (each a lib0
    varUint8Array: a var-uint length, then the bytes; the update may be empty); the update is
    stored before the answer, which is the Yjs update the client lacks."""
    body = await _read_limited(request)
    state, update = service.split_sync_body(body)
    answer = await service.exchange(
        store, target, state, update, sender=principal.subject,
        rollbacks=request.app.state.sync_hub.rollbacks,
    )  # fmt: skip
    return Response(answer, media_type=OCTETS)


async def _read_limited(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_SYNC_BODY:
        raise PayloadTooLarge(f"at most {MAX_SYNC_BODY} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_SYNC_BODY:
            raise PayloadTooLarge(f"at most {MAX_SYNC_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------------- records as JSON


@router.get("/records")
async def list_records(
    target: Installed, store: Store, stream: StreamName, cursor: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
) -> dict[str, Any]:  # fmt: skip
    """A stream's records, by primary key, a page at a time (``cursor``: the last key seen)."""
    spec = service.stream_of(target, stream)
    async with store.session(target.id) as live:
        return service.list_records(live, spec, after=cursor, limit=limit)


@router.get("/records/{stream}/{key}")
async def get_record(target: Installed, store: Store, stream: StreamPath, key: KeyPath) -> dict:
    spec = service.stream_of(target, stream)
    async with store.session(target.id) as live:
        return service.get_record(live, spec, key)


@router.patch("/records/{stream}/{key}", dependencies=Writer)
async def patch_record(
    target: Installed, store: Store, stream: StreamPath, key: KeyPath,
    body: Annotated[Any, Body(description="The fields to change")],
) -> dict:  # fmt: skip
    """Change fields of a record (or create it): a CRDT change, written to the external system
    from the outbox. The result must satisfy the stream's schema (422 otherwise)."""
    spec = service.stream_of(target, stream)
    return await service.patch_record(store, target, spec, key, body)


@router.delete("/records/{stream}/{key}", status_code=204, dependencies=Writer)
async def delete_record(
    target: Installed, store: Store, stream: StreamPath, key: KeyPath
) -> Response:
    spec = service.stream_of(target, stream)
    await service.delete_record(store, target, spec, key)
    return Response(status_code=204)


# ---------------------------------------------------------------------- runs and status


@router.post("/sync/run", status_code=202, dependencies=Writer)
async def run(target: Installed, engine: Engine) -> dict[str, str]:
    """Start a sync run now (pull every stream from its cursor, then push the outbox). 409
    ``sync_running`` while one runs; follow it in ``sync/status`` and ``sync/runs``."""
    await _start(engine, target, "manual")
    return {"status": "started"}


@router.post("/sync/resync", status_code=202, dependencies=Writer)
async def resync(target: Installed, engine: Engine) -> dict[str, str]:
    """Forget the cursors and pull everything again."""
    await _start(engine, target, "resync")
    return {"status": "started"}


async def _start(engine: SyncEngine, target: Target, kind: str) -> None:
    if not service.streams(target):
        raise NoStreams(f"{target.service_name} declares no streams")
    if await engine.is_running(target.id):
        raise SyncRunning("a sync run of this install is in progress")
    engine.start(target.tenant_id, target.id, kind)


@router.get("/sync/status")
async def status(target: Installed, engine: Engine, request: Request) -> dict[str, Any]:
    database: Database = request.app.state.db
    async with database.connection() as conn:
        cursors = await repository.cursors(conn, target.id)
        counts = await repository.outbox_counts(conn, target.id)
        last = await repository.runs(conn, target.id, before=None, limit=1)
        last_sync_at = await conn.fetchval(
            "SELECT last_sync_at FROM integration_connectors WHERE id = $1", target.id
        )
    latest = dict(last[0]) if last else None
    running = await engine.is_running(target.id)
    if latest and latest["outcome"] == "running" and not running:
        latest["outcome"] = "interrupted"  # its process died; the next run records that
    return {
        "running": running,
        "cursors": cursors,
        "outbox_depth": counts["pending"],
        "dead_letters": counts["dead"],
        "last_sync_at": last_sync_at,
        "last_run": latest,
        "last_error": latest["error"] if latest else None,
    }


@router.get("/sync/runs")
async def runs(
    target: Installed, request: Request, cursor: CursorParam = None, limit: Limit = DEFAULT_LIMIT
) -> dict[str, Any]:
    """Run history, newest first: start, end, outcome, records pulled and pushed."""
    key = decode_cursor(cursor, parse=(datetime.fromisoformat, uuid.UUID))
    async with request.app.state.db.connection() as conn:
        rows = await repository.runs(
            conn, target.id, before=(key[0], key[1]) if key else None, limit=limit + 1
        )
    items = [dict(r) for r in rows[:limit]]
    more = len(rows) > limit
    nxt = (
        encode_cursor([items[-1]["started_at"].isoformat(), str(items[-1]["id"])]) if more else None
    )
    return {"items": items, "next_cursor": nxt}


@router.get("/sync/dead-letters")
async def dead_letters(
    target: Installed, request: Request, cursor: CursorParam = None, limit: Limit = DEFAULT_LIMIT
) -> dict[str, Any]:
    """Changes the external system refused, with the reason."""
    key = decode_cursor(cursor, parse=(int,))
    async with request.app.state.db.connection() as conn:
        rows = await repository.dead_letters(
            conn, target.id, after=key[0] if key else None, limit=limit + 1
        )
    items = [dict(r) for r in rows[:limit]]
    more = len(rows) > limit
    return {"items": items, "next_cursor": encode_cursor([items[-1]["id"]]) if more else None}


@router.post("/sync/dead-letters/{letter_id}/retry", dependencies=Writer)
async def retry_dead_letter(target: Installed, request: Request, letter_id: int) -> dict:
    """Send the record's current state again."""
    async with request.app.state.db.connection() as conn:
        if not await repository.revive(conn, target.id, letter_id):
            raise DeadLetterNotFound(f"no dead letter {letter_id} for this install")
    return {"status": "pending"}


@router.delete("/sync/dead-letters/{letter_id}", status_code=204, dependencies=Writer)
async def discard_dead_letter(target: Installed, request: Request, letter_id: int) -> Response:
    async with request.app.state.db.connection() as conn:
        if not await repository.discard(conn, target.id, letter_id):
            raise DeadLetterNotFound(f"no dead letter {letter_id} for this install")
    return Response(status_code=204)
