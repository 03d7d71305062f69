"""Records as the sync document holds them.

One root map ``records``; keys ``<stream>/<primary key>`` (stream names hold no ``/``, primary
keys are strings); values maps of JSON scalars (string, number, boolean, null). A field whose
value is an object or an array is held as its JSON text. Numbers come back from the document
as floats (Yjs has one number type): fields the stream's schema declares ``integer`` are turned
back into integers on the way out, and fields it declares ``object`` or ``array`` back into
their values (:func:`field_kinds`, :func:`from_fields`).

:func:`schema_problems` is the one rule a record must meet, whatever changed it: the JSON API's
``PATCH`` and Yjs updates (``POST sync``, WebSocket clients) alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pycrdt import Map

from common import jsonschemas

ROOT = "records"
SCALARS = (str, int, float, bool, type(None))
MAX_PROBLEMS = 20
SAFE_INTEGER = 2**53  # beyond it a float is no exact integer


def key(stream: str, primary_key: Any) -> str:
    return f"{stream}/{primary_key}"


def split(record_key: str) -> tuple[str, str]:
    stream, _, pk = record_key.partition("/")
    return stream, pk


def to_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record's fields as the document holds them."""
    return {
        name: value if isinstance(value, SCALARS) else orjson.dumps(value).decode()
        for name, value in record.items()
    }


def insert(records: Map, record_key: str, fields: Mapping[str, Any]) -> None:
    """``records[record_key] = Map(fields)``, about twice as fast for a whole page of new
    records: pycrdt's ``Map(...)`` opens a nested transaction per field; this inserts the
    fields into the integrated map directly in the caller's transaction. Same operations, same
    update bytes. Falls back to the public API if pycrdt's internals change."""
    record = Map()
    records[record_key] = record
    try:
        with records.doc.transaction() as txn:
            put, raw = record.integrated.insert, txn._txn
            for name, value in fields.items():
                put(raw, name, value)
    except AttributeError:  # another pycrdt: the slow, public way
        for name, value in fields.items():
            record[name] = value


@dataclass(frozen=True)
class Kinds:
    """The fields a stream's schema says are integers (the document holds floats), and those it
    says are objects or arrays (the document holds their JSON text)."""

    integers: frozenset[str] = frozenset()
    structured: frozenset[str] = frozenset()


def field_kinds(schema: Any) -> Kinds:
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(properties, Mapping):
        return Kinds()
    integers, structured = set(), set()
    for name, spec in properties.items():
        kinds = spec.get("type") if isinstance(spec, Mapping) else None
        kinds = set(kinds) if isinstance(kinds, list) else {kinds}
        if "integer" in kinds and "number" not in kinds:
            integers.add(name)
        if kinds & {"object", "array"} and "string" not in kinds:
            structured.add(name)
    return Kinds(frozenset(integers), frozenset(structured))


def from_fields(fields: Mapping[str, Any], kinds: Kinds) -> dict[str, Any]:
    """A record out of the document: integers, objects and arrays back where the schema wants
    them."""
    if not kinds.integers and not kinds.structured:
        return dict(fields)
    out = dict(fields)
    for name in kinds.integers & out.keys():
        value = out[name]
        if isinstance(value, float) and value.is_integer():
            out[name] = int(value)
    for name in kinds.structured & out.keys():
        out[name] = _parsed(out[name])
    return out


def _parsed(value: Any) -> Any:
    """JSON text as its value (what is not JSON text stays as it is, for the schema to refuse)."""
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


def changed(current: Mapping[str, Any], incoming: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``incoming`` whose value differs from ``current`` (numbers compared as
    numbers: 3 and 3.0 are the same)."""
    return {
        name: value
        for name, value in incoming.items()
        if name not in current or not _same(current[name], value)
    }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def schema_problems(fields: Mapping[str, Any], schema: Any) -> list[tuple[str, str]]:
    """What the stream's ``schema`` says against a record as the document holds it: ``(path,
    message)`` pairs (``"/"`` for the record itself), by path, at most :data:`MAX_PROBLEMS`;
    none when the stream declares no schema. Yjs has one number type, so a number with no
    fraction counts as an integer (as JSON Schema says) and is shown as one. Patterns are
    matched in bounded time (:mod:`common.jsonschemas`); a schema that cannot check anything
    raises :class:`jsonschemas.UnusableSchema`."""
    if not isinstance(schema, dict):
        return []
    structured = field_kinds(schema).structured
    record = {
        name: int(value)
        if isinstance(value, float) and value.is_integer() and abs(value) < SAFE_INTEGER
        else _parsed(value)
        if name in structured
        else value
        for name, value in fields.items()
    }
    found = sorted(jsonschemas.errors(schema, record), key=lambda e: [str(p) for p in e.path])
    return [("/" + "/".join(str(p) for p in e.path), e.message) for e in found[:MAX_PROBLEMS]]
