"""Records as the sync document holds them.

One root map ``records``; keys ``<stream>/<primary key>`` (stream names hold no ``/``, primary
keys are strings); values maps of JSON scalars (string, number, boolean, null). A field whose
value is an object or an array is held as its JSON text. Numbers come back from the document
as floats (Yjs has one number type): fields the stream's schema declares ``integer`` are turned
back into integers on the way out.

:func:`schema_problems` is the one rule a record must meet, whatever changed it: the JSON API's
``PATCH`` and Yjs updates (``POST sync``, WebSocket clients) alike.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def integer_fields(schema: Mapping[str, Any]) -> frozenset[str]:
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(properties, Mapping):
        return frozenset()
    out = set()
    for name, spec in properties.items():
        kinds = spec.get("type") if isinstance(spec, Mapping) else None
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if "integer" in kinds and "number" not in kinds:
            out.add(name)
    return frozenset(out)


def from_fields(fields: Mapping[str, Any], integers: frozenset[str]) -> dict[str, Any]:
    """A record out of the document: integers back where the schema wants them."""
    return {
        name: int(value)
        if name in integers and isinstance(value, float) and value.is_integer()
        else value
        for name, value in fields.items()
    }


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
    record = {
        name: int(value)
        if isinstance(value, float) and value.is_integer() and abs(value) < SAFE_INTEGER
        else value
        for name, value in fields.items()
    }
    found = sorted(jsonschemas.errors(schema, record), key=lambda e: [str(p) for p in e.path])
    return [("/" + "/".join(str(p) for p in e.path), e.message) for e in found[:MAX_PROBLEMS]]
