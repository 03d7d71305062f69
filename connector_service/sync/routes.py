from __future__ import annotations

import base64
import contextlib
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
from connector_service.sync import record_service, repository, service, shard_sql
from connector_service.sync import records as rec
from connector_service.sync.engine import NoStreams, SyncEngine, SyncRunning
from connector_service.sync.layout import Shard, ShardSplit
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
StreamFilter = Annotated[str | None, Query(min_length=1, max_length=100, pattern=r"^[^/]+$")]
ShardParam = Annotated[uuid.UUID | None, Query(description="A shard's id (GET sync/shards)")]
KeysParam = Annotated[
    list[str],
    Query(min_length=1, max_length=200, description="Primary keys (repeat the parameter)"),
]
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


async def _shard(target: Installed, request: Request, shard: ShardParam = None) -> Shard:
    """The shard named by ``?shard=`` (the install's root without it): 404 if the install has
    no such shard, 410 ``shard_split`` if it was split."""
    async with request.app.state.db.connection() as conn:
        return await shard_sql.named_shard(conn, target.id, shard)


ShardOf = Annotated[Shard, Depends(_shard)]


@router.get("/sync/state-vector", response_class=Response,
            responses={200: {"content": {OCTETS: {}}}})  # fmt: skip
async def state_vector(shard: ShardOf, store: Store) -> Response:
    """The shard's Yjs state vector (binary); ``?shard=`` names it (default: the root)."""
    async with store.session(shard.id) as live:
        return Response(live.state_vector(), media_type=OCTETS)


@router.post("/sync", response_class=Response, dependencies=Writer,
             responses={200: {"content": {OCTETS: {}}}})  # fmt: skip
async def sync(
    target: Installed, shard: ShardOf, store: Store, request: Request,
    principal: CurrentPrincipal,
) -> Response:  # fmt: skip
    """One round trip with a shard (``?shard=``; default: the root): the body is the client's
    state vector and update (each a lib0 varUint8Array: a var-uint length, then the bytes; the
    update may be empty); the update is stored before the answer, which is the Yjs update the
    client lacks."""
    body = await _read_limited(request)
    state, update = service.split_sync_body(body)
    answer = await service.exchange(
        store, target, shard, state, update, sender=principal.subject,
        rollbacks=request.app.state.sync_hub.rollbacks,
    )  # fmt: skip
    return Response(answer, media_type=OCTETS)


@router.get("/sync/shards")
async def shards(
    target: Installed, request: Request, store: Store, stream: StreamFilter = None,
    cursor: CursorParam = None, limit: Limit = DEFAULT_LIMIT,
) -> dict[str, Any]:  # fmt: skip
    """The live shards (the root first, then by stream and the first hash each covers): what
    each holds, its size and its Yjs state vector (base64). ``stream`` keeps those holding it."""
    key = decode_cursor(cursor, parse=(str, int))
    async with request.app.state.db.connection() as conn:
        rows = await shard_sql.listing(conn, target.id, stream=stream,
                                       after=(key[0], key[1]) if key else None,
                                       limit=limit + 1)  # fmt: skip
    items = []
    for row in rows[:limit]:
        found = _shard_json(row)
        if row["state_vector"] is None:  # not changed since the upgrade to shards: read it
            with contextlib.suppress(ShardSplit):
                async with store.session(row["id"], transient=True) as live:
                    found["state_vector"] = base64.b64encode(live.state_vector()).decode()
                    found["records"] = len(live.records)
        items.append(found)
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    return {
        "hash": "crc32",
        "items": items,
        "next_cursor": encode_cursor([last["stream"] or "", last["start"]]) if last else None,
    }


@router.get("/sync/shards/for")
async def shards_for(
    target: Installed, store: Store, stream: StreamName, keys: KeysParam
) -> dict[str, Any]:
    """Which shard holds each of the records ``keys`` (primary keys) of ``stream``: the rooms
    a client showing those records joins."""
    service.stream_of(target, stream)
    layout = await store.router.layout(target.id, fresh=True)
    items, used = [], {}
    for pk in keys:
        shard = layout.route(rec.key(stream, pk))
        items.append({"key": pk, "shard": str(shard.id) if shard else None})
        if shard is not None:
            used[shard.id] = shard
    return {
        "items": items,
        "shards": [{"id": str(s.id), "stream": s.stream, "bits": s.bits, "slot": s.slot}
                   for s in used.values()],
    }  # fmt: skip


def _shard_json(row: Any) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "stream": row["stream"],
        "bits": row["bits"],
        "slot": row["slot"],
        "records": row["records"],
        "bytes": row["bytes"],
        "state_vector": base64.b64encode(row["state_vector"] or b"\x00").decode(),
    }


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


@router.get("/streams")
async def list_streams(target: Installed) -> dict[str, Any]:
    """The install's streams as its connector version declares them: name, primary key, cursor
    field and the JSON Schema its records satisfy (what a records view shows and edits)."""
    return {
        "items": [
            {
                "name": name,
                "primary_key": spec.get("primary_key"),
                "cursor_field": spec.get("cursor_field"),
                "schema": spec.get("schema") or {},
            }
            for name, spec in service.streams(target).items()
        ]
    }


SearchParam = Annotated[
    str | None,
    Query(min_length=1, max_length=200, description="Text a record's key or a field contains"),
]


@router.get("/records")
async def list_records(
    target: Installed, store: Store, stream: StreamName, cursor: str | None = None,
    limit: Limit = DEFAULT_LIMIT, q: SearchParam = None,
) -> dict[str, Any]:  # fmt: skip
    """A stream's records a page at a time, in the order of their shards (``cursor``: the last
    key seen). With ``q``, those whose primary key or any field contains it (ignoring case):
    one answer looks at 5,000 records at most, so a page may hold fewer than ``limit`` with
    ``next_cursor`` set (``scanned`` says how many were looked at)."""
    spec = service.stream_of(target, stream)
    return await record_service.list_records(
        store, target, spec, after=cursor, limit=limit, contains=q
    )


@router.get("/records/{stream}/{key}")
async def get_record(target: Installed, store: Store, stream: StreamPath, key: KeyPath) -> dict:
    spec = service.stream_of(target, stream)
    return await record_service.get_record(store, target, spec, key)


@router.patch("/records/{stream}/{key}", dependencies=Writer)
async def patch_record(
    target: Installed, store: Store, stream: StreamPath, key: KeyPath,
    body: Annotated[Any, Body(description="The fields to change")],
) -> dict:  # fmt: skip
    """Change fields of a record (or create it): a CRDT change, written to the external system
    from the outbox. The result must satisfy the stream's schema (422 otherwise)."""
    spec = service.stream_of(target, stream)
    return await record_service.patch_record(store, target, spec, key, body)


@router.delete("/records/{stream}/{key}", status_code=204, dependencies=Writer)
async def delete_record(
    target: Installed, store: Store, stream: StreamPath, key: KeyPath
) -> Response:
    spec = service.stream_of(target, stream)
    await record_service.delete_record(store, target, spec, key)
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
        loading = await shard_sql.load_progress(conn, target.id)
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
        "loading": {
            row["stream"]: {
                "records": row["records"],
                "pages": row["pages"],
                "started_at": row["started_at"],
                "updated_at": row["updated_at"],
            }
            for row in loading
        },
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
