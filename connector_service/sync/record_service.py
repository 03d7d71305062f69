"""The records of a stream as JSON, wherever their shards are: list, read, change, delete.

Records are listed in the order of their key's hash (the CRC-32 that places them in shards,
:mod:`layout`), then their key: the order shards cover, so a page reads one or two shards and
the order holds across splits; ``cursor`` is the last primary key seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pycrdt import Map

from common import jsonschemas
from connector_service.manager.manager import Target
from connector_service.sync import access
from connector_service.sync import records as rec
from connector_service.sync.document import PLATFORM
from connector_service.sync.layout import HASH_BITS, ShardSplit, key_hash
from connector_service.sync.service import InvalidRecord, RecordNotFound, enqueue_changes
from connector_service.sync.store import DocStore

ATTEMPTS = 5
SCAN_LIMIT = 5000  # records one search answer looks at, at most


async def list_records(
    store: DocStore,
    target: Target,
    stream: Mapping[str, Any],
    *,
    after: str | None,
    limit: int,
    contains: str | None = None,
) -> dict[str, Any]:
    """A page of the stream's records after the key ``after``. With ``contains``, only those
    whose key or a field's text holds it (ignoring case), looking at :data:`SCAN_LIMIT` records
    at most: the page may then be short, its ``next_cursor`` where to go on."""
    prefix = f"{stream['name']}/"
    start = (key_hash(prefix + after), prefix + after) if after is not None else (-1, "")
    integers = rec.field_kinds(stream.get("schema") or {})
    needle = contains.casefold() if contains else None
    for attempt in range(ATTEMPTS):
        layout = await store.router.layout(target.id, fresh=attempt > 0)
        if attempt == 0 and not layout.of_stream(stream["name"]):  # never from the cache alone
            layout = await store.router.layout(target.id, fresh=True)
        found: list[tuple[tuple[int, str], dict[str, Any]]] = []
        scanned, last = 0, None
        try:
            for shard in layout.of_stream(stream["name"]):
                if shard.start + (1 << (HASH_BITS - shard.bits)) <= start[0]:
                    continue  # wholly before the cursor
                async with store.session(shard.id, transient=True) as live:
                    places = ((key_hash(k), k) for k in live.records if k.startswith(prefix))
                    for place in sorted(place for place in places if place > start):
                        if len(found) > limit or scanned >= SCAN_LIMIT:
                            break
                        fields = live.records[place[1]].to_py()
                        scanned, last = scanned + 1, place
                        if needle is None or _holds(place[1][len(prefix) :], fields, needle):
                            found.append((place, fields))
                if len(found) > limit or scanned >= SCAN_LIMIT:
                    break
        except ShardSplit:
            continue
        page = found[:limit]
        items = [rec.from_fields(fields, integers) for _, fields in page]
        if len(found) > limit:
            next_key = page[-1][0][1]
        elif scanned >= SCAN_LIMIT and last is not None:
            next_key = last[1]  # the search stopped here: go on from it
        else:
            next_key = None
        out = {"items": items, "next_cursor": next_key[len(prefix) :] if next_key else None}
        if needle is not None:
            out["scanned"] = scanned
        return out
    raise ShardSplit(target.id)


def _holds(pk: str, fields: Mapping[str, Any], needle: str) -> bool:
    return needle in pk.casefold() or any(
        needle in str(value).casefold() for value in fields.values() if value is not None
    )


async def get_record(
    store: DocStore, target: Target, stream: Mapping[str, Any], pk: str
) -> dict[str, Any]:
    async with access.session_for(store, target.id, rec.key(stream["name"], pk)) as live:
        fields = None if live is None else live.get(rec.key(stream["name"], pk))
    if fields is None:
        raise RecordNotFound(f"no {stream['name']} record {pk!r}")
    return rec.from_fields(fields, rec.field_kinds(stream.get("schema") or {}))


async def patch_record(
    store: DocStore, target: Target, stream: Mapping[str, Any], pk: str, body: Any
) -> dict[str, Any]:
    """Change (or create) one record's fields on the platform side; pushed from the outbox.
    A split of its shard meanwhile (here or by another replica) changed nothing: placed anew."""
    if not isinstance(body, dict) or not body:
        raise InvalidRecord("the body must be a JSON object with the fields to change")
    key_field = stream.get("primary_key") or "id"
    if key_field in body and str(body[key_field]) != pk:
        raise InvalidRecord(f"{key_field!r} is the record's key: it cannot change")
    for attempt in range(ATTEMPTS):
        try:
            return await _patch(store, target, stream, pk, body, key_field)
        except ShardSplit:
            if attempt == ATTEMPTS - 1:
                raise
    raise ShardSplit(target.id)  # never reached


async def _patch(
    store: DocStore, target: Target, stream: Mapping[str, Any], pk: str, body: dict,
    key_field: str,
) -> dict[str, Any]:  # fmt: skip
    integers = rec.field_kinds(stream.get("schema") or {})
    k = rec.key(stream["name"], pk)
    async with access.session_for(store, target.id, k, create=True) as live:
        assert live is not None  # created
        current = live.get(k) or {}
        incoming = rec.to_fields({**body, key_field: body.get(key_field, pk)})
        merged = rec.from_fields({**current, **incoming}, integers)
        _validate(merged, stream)
        change = rec.changed(current, incoming)

        def apply(records: Map) -> None:
            existing = records.get(k)
            if isinstance(existing, Map):
                for field, value in change.items():
                    existing[field] = value
            else:
                records[k] = Map(incoming)

        update, changes = live.transact(PLATFORM, apply)
        await store.append(live, PLATFORM, update, extra=enqueue_changes(target.id, changes))
        return rec.from_fields(live.get(k) or {}, integers)


async def delete_record(
    store: DocStore, target: Target, stream: Mapping[str, Any], pk: str
) -> None:
    k = rec.key(stream["name"], pk)
    for attempt in range(ATTEMPTS):
        try:
            async with access.session_for(store, target.id, k) as live:
                if live is None or live.get(k) is None:
                    raise RecordNotFound(f"no {stream['name']} record {pk!r}")
                update, changes = live.transact(PLATFORM, lambda records: records.pop(k))
                await store.append(live, PLATFORM, update,
                                   extra=enqueue_changes(target.id, changes))  # fmt: skip
            return
        except ShardSplit:  # split meanwhile: nothing was changed, placed anew
            if attempt == ATTEMPTS - 1:
                raise


def _validate(record: dict[str, Any], stream: Mapping[str, Any]) -> None:
    try:  # patterns matched in bounded time: the schema is the connector author's
        errors = rec.schema_problems(record, stream.get("schema"))
    except jsonschemas.UnusableSchema as exc:
        raise InvalidRecord(
            f"the {stream['name']} stream's schema cannot check records: {exc}",
            errors=[{"path": "/", "message": f"the connector's schema is unusable: {exc}"}],
        ) from None
    if errors:
        found = [{"path": path, "message": message} for path, message in errors]
        raise InvalidRecord(f"the {stream['name']} record would be invalid", errors=found)
