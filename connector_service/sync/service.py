"""What the sync API does with a shard's document: Yjs updates over HTTP, and the checks every
change from a client passes (the JSON records API is :mod:`record_service`)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import asyncpg
from pycrdt import Doc, Map, write_message

from common import jsonschemas
from common.errors import InvalidRequest, NotFound, SeedosError
from connector_service.manager.manager import Target
from connector_service.outbound import events as outbound_events
from connector_service.sync import records as rec
from connector_service.sync import repository
from connector_service.sync.document import CLIENT, DELETED, LiveDoc
from connector_service.sync.layout import Shard
from connector_service.sync.lib0 import Decoder, Malformed, lacks
from connector_service.sync.refusals import Rollbacks
from connector_service.sync.store import DocStore

SCALAR_TYPES = (str, int, float, bool, type(None))


class MalformedUpdate(SeedosError):
    status, code, title = 400, "malformed_update", "Not a Yjs update"


class InvalidRecords(InvalidRequest):
    code, title = "invalid_records", "The change breaks the records layout"


class IncompleteUpdate(InvalidRequest):
    code, title = "incomplete_update", "The update depends on changes the server does not have"


class TooManyRefusals(SeedosError):
    status, code, title = 429, "too_many_refused_updates", "Too many refused updates"

    def __init__(self, seconds: float) -> None:
        wait = max(1, math.ceil(seconds))
        super().__init__(
            f"updates of this sender were refused too often: try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )


class UnknownStream(InvalidRequest):
    code, title = "unknown_stream", "No such stream"


class RecordNotFound(NotFound):
    code, title = "record_not_found", "No such record"


class InvalidRecord(InvalidRequest):
    code, title = "invalid_record", "The record is invalid"


def streams(target: Target) -> dict[str, Mapping[str, Any]]:
    found = target.manifest.get("streams")
    if not isinstance(found, list):
        return {}
    return {s["name"]: s for s in found if isinstance(s, Mapping) and s.get("name")}


def stream_of(target: Target, name: str) -> Mapping[str, Any]:
    spec = streams(target).get(name)
    if spec is None:
        raise UnknownStream(f"{target.service_name} has no stream {name!r}")
    return spec


def enqueue_changes(integration_id: uuid.UUID, changes: dict[str, set[str] | None]) -> Any:
    """The ``extra`` of an append: the changed records into the outbox, same transaction."""

    async def write(conn: asyncpg.Connection, _update_id: int) -> None:
        rows = outbox_rows(changes)
        await repository.enqueue(conn, integration_id, rows)
        await outbound_changes(conn, integration_id, rows, origin="platform")

    return write


async def outbound_changes(
    conn: asyncpg.Connection, integration_id: uuid.UUID, rows: list[tuple[str, str, Any, bool]],
    *, origin: str,
) -> None:  # fmt: skip
    """One ``records.changed`` event per stream of a commit (connector_service/outbound/)."""
    by_stream: dict[str, tuple[list[str], list[str]]] = {}
    for stream, pk, _fields, deleted in rows:
        by_stream.setdefault(stream, ([], []))[1 if deleted else 0].append(pk)
    for stream, (upserted, gone) in by_stream.items():
        await outbound_events.publish_for_install(
            conn, integration_id=integration_id, type=outbound_events.RECORDS_CHANGED,
            data=outbound_events.records_changed(stream=stream, origin=origin,
                                                 upserted=upserted, deleted=gone),
        )  # fmt: skip


def outbox_rows(changes: dict[str, set[str] | None]) -> list[tuple[str, str, list[str], bool]]:
    """Record changes as outbox rows: (stream, primary key, fields, deleted)."""
    rows = []
    for record_key, fields in changes.items():
        stream, pk = rec.split(record_key)
        deleted = fields is DELETED
        rows.append((stream, pk, [] if deleted else sorted(fields or ()), deleted))
    return rows


# ---------------------------------------------------------------------- Yjs over HTTP


def split_sync_body(body: bytes) -> tuple[bytes, bytes]:
    """``POST sync`` body: the client's state vector then its update, each a lib0 varUint8Array
    (a var-uint length, then the bytes); the update may be empty."""
    try:
        parts = Decoder(body).read_messages()
    except Malformed:
        raise MalformedUpdate("the body is not two length-prefixed byte arrays") from None
    if len(parts) == 1:
        parts.append(b"")
    if len(parts) != 2 or len(write_message(parts[0])) + len(write_message(parts[1])) != len(body):
        raise MalformedUpdate("the body must hold a state vector and an update, nothing more")
    return parts[0], parts[1]


def check_update(
    update: bytes, known_streams: Mapping[str, Mapping[str, Any]], shard: Shard | None = None
) -> None:
    """Refuse an update that is not Yjs, or that puts into ``records`` a key outside the
    ``<stream>/<primary key>`` layout, a record that is not a map, a field that is not a
    JSON scalar, or a record its stream's schema refuses. Checked on a scratch document, so
    the live one stays untouched. What the scratch document cannot see (an update to a record
    it does not itself create: those items wait there for the record) is checked after
    applying, by :func:`check_applied` and :func:`check_schemas`."""
    scratch = Doc()
    records = scratch.get(rec.ROOT, type=Map)
    try:
        scratch.apply_update(update)
    except ValueError:
        raise MalformedUpdate("the update is not a Yjs update (format v1)") from None
    problems = [
        p for k, value in records.items() for p in _record_problems(k, value, known_streams, shard)
    ]
    others = [name for name in scratch if name != rec.ROOT]
    problems += [{"path": f"/{name}", "message": "only the records map is synced"}
                 for name in others]  # fmt: skip
    if problems:
        raise InvalidRecords(_summary(problems), errors=problems[:20])
    check_schemas(records, records.keys(), known_streams)


def check_integrated(live: LiveDoc, update: bytes) -> None:
    """Refuse an applied update that the document could not wholly integrate: items (or
    deletions) depending on items it lacks wait in its memory for whatever update brings
    those, and would be taken, and checked, with that one (another sender's). On a problem
    the caller must roll the document back."""
    if lacks(live.state_vector(), update):
        raise IncompleteUpdate(
            "the update depends on changes the server does not have: synchronize and send it "
            "again with them"
        )


def check_client_update(
    live: LiveDoc,
    update: bytes,
    changes: dict[str, set[str] | None],
    known_streams: Mapping[str, Mapping[str, Any]],
    *,
    schemas: bool = True,
) -> None:
    """What must hold once a client's update is applied, whichever way it came (``POST sync``,
    WebSocket): the document integrated all of it, the records it changed keep the layout and
    (with ``schemas``; the WebSocket batches check them once per batch) their streams'
    schemas. On a problem the caller rolls the document back."""
    check_integrated(live, update)
    check_applied(live, changes, known_streams)
    if schemas:
        check_schemas(live.records, changed_records(changes), known_streams)


def check_before_applying(rollbacks: Rollbacks, target: Target, sender: str) -> None:
    """A sender whose updates cost too many rollbacks lately is refused before applying."""
    if (seconds := rollbacks.wait(target.id, sender)) > 0:
        raise TooManyRefusals(seconds)


def check_applied(
    live: LiveDoc, changes: dict[str, set[str] | None], known_streams: Collection[str]
) -> None:
    """The records an applied update changed, as the live document now holds them. On a
    problem the caller must drop the document from memory (the update is not in the log)."""
    problems = [
        p for k, fields in changes.items() if fields is not DELETED
        for p in _record_problems(k, live.records.get(k), known_streams, live.shard,
                                  only=fields)
    ]  # fmt: skip
    if problems:
        raise InvalidRecords(_summary(problems), errors=problems[:20])


def check_schemas(
    records: Map, keys: Iterable[str], known_streams: Mapping[str, Mapping[str, Any]]
) -> None:
    """The records named by ``keys`` (those an update created or changed, after the layout
    checks), each as a whole as ``records`` now holds it, against its stream's schema: the
    rule of ``PATCH``. :class:`InvalidRecord` lists each record and field."""
    problems: list[tuple[str, str, str]] = []
    for k in keys:
        value = records.get(k)
        if not isinstance(value, Map):
            continue  # deleted
        try:
            found = rec.schema_problems(value.to_py(), known_streams[rec.split(k)[0]].get("schema"))
        except jsonschemas.UnusableSchema as exc:
            found = [("/", f"the connector's schema is unusable: {exc}")]
        problems += [(k, path, message) for path, message in found]
        if len(problems) >= rec.MAX_PROBLEMS:
            break
    if problems:
        k, path, message = problems[0]
        first = f"{k}: {message}" if path == "/" else f"{k}: {path[1:]}: {message}"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        errors = [{"path": f"/{k}" + ("" if path == "/" else path), "message": message}
                  for k, path, message in problems[: rec.MAX_PROBLEMS]]  # fmt: skip
        raise InvalidRecord(first + more, errors=errors)


def _summary(problems: list[dict[str, str]]) -> str:
    """The first problem (what a close frame's reason can hold), and how many more."""
    first = f"{problems[0]['path'][1:]}: {problems[0]['message']}"
    return first + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")


def changed_records(changes: dict[str, set[str] | None]) -> list[str]:
    """The keys of the records an update created or changed (not those it deleted)."""
    return [k for k, fields in changes.items() if fields is not DELETED]


def _record_problems(
    k: str,
    value: Any,
    known_streams: Collection[str],
    shard: Shard | None,
    *,
    only: Collection[str] | None = None,
) -> list[dict[str, str]]:
    """What is wrong with a record as the document holds it (``only``: just these fields,
    the ones a change touched; the others were checked when they were written)."""
    stream, pk = rec.split(k)
    if stream not in known_streams or not pk or "\x00" in k:
        return [{"path": f"/{k!r}", "message": "not <stream>/<primary key> of a stream"}]
    if shard is not None and not shard.holds(k):
        return [{"path": f"/{k}", "message": "belongs to another shard (GET sync/shards/for)"}]
    if not isinstance(value, Map):
        return [{"path": f"/{k}", "message": "a record must be a map of fields"}]
    fields = value.items() if only is None else ((f, value.get(f)) for f in only)
    return [
        {"path": f"/{k}/{field!r}", "message": message}
        for field, v in fields
        for message in (["a field name may not hold NUL"] if "\x00" in field else [])
        + ([] if isinstance(v, SCALAR_TYPES) else ["not a JSON scalar"])
    ]


async def exchange(
    store: DocStore, target: Target, shard: Shard, state_vector: bytes, update: bytes, *,
    sender: str, rollbacks: Rollbacks,
) -> bytes:  # fmt: skip
    """Integrate the client's update into the shard (durably, before answering) and return
    what the client lacks. ``sender``: the principal's subject, whose refusals after applying
    ``rollbacks`` counts."""
    known = streams(target)
    if update:
        check_update(update, known, shard)
        check_before_applying(rollbacks, target, sender)
    async with store.session(shard.id) as live:
        try:  # before the client's update: what it sent is not sent back
            answer = live.diff(state_vector)
        except ValueError:
            raise MalformedUpdate("the state vector is malformed") from None
        if update:
            applied, changes = live.apply(update, CLIENT)
            try:
                check_client_update(live, update, changes, known)
            except (IncompleteUpdate, InvalidRecords, InvalidRecord):
                rollbacks.count(target.id, sender)
                await store.rollback(live)  # memory must not keep what the log will not
                raise
            if applied:
                await store.append(live, CLIENT, applied, extra=enqueue_changes(target.id, changes))
        return answer
