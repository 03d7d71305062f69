"""What a shard splits into: its records grouped by the shards that take them over, each group
written as a new document (:mod:`encode`). No database here: the store commits the result.

The root splits into the streams it holds, each with as many bits as its records need; a stream
shard into the shards of ``bits + k`` that cover its range, ``k`` at least 1 and enough to leave
each with at most :data:`layout.FILL_RECORDS` records on average. A split copies the records
(the new documents are new Yjs documents: item ids are not kept), so a client of the old shard
moves to the new ones and starts from their state; nothing it had acknowledged is lost, since
the copy is made under the shard's lock from its complete state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pycrdt import Map

from connector_service.sync import encode
from connector_service.sync.layout import (
    FILL_RECORDS,
    HASH_BITS,
    MAX_BITS,
    MAX_BYTES,
    MAX_RECORDS,
    Shard,
    bits_for,
    key_hash,
)

Place = tuple[str, int, int]  # (stream, bits, slot)


@dataclass(frozen=True)
class Child:
    stream: str
    bits: int
    slot: int
    update: bytes
    state_vector: bytes
    records: int


def oversized(records: int, stored_bytes: int, *, max_records: int = MAX_RECORDS,
              max_bytes: int = MAX_BYTES) -> bool:  # fmt: skip
    return records > max_records or stored_bytes > max_bytes


def places(
    shard: Shard, keys: Iterable[str], *, skip_stream: str | None = None,
    fill: int = FILL_RECORDS,
) -> dict[Place, list[str]]:  # fmt: skip
    """Which shard replacing ``shard`` takes each of ``keys`` (all of them the shard's); for
    the root, every stream but ``skip_stream``."""
    keys = list(keys)
    if shard.stream is None:
        by_stream: dict[str, list[str]] = {}
        for k in keys:
            stream = k.partition("/")[0]
            if stream != skip_stream:
                by_stream.setdefault(stream, []).append(k)
        out: dict[Place, list[str]] = {}
        for stream, found in by_stream.items():
            out.update(_spread(stream, 0, 0, found, fill=fill))
        return out
    assert shard.stream is not None
    return _spread(shard.stream, shard.bits, shard.slot, keys, at_least=1, fill=fill)


def _spread(stream: str, bits: int, slot: int, keys: list[str], *, at_least: int = 0,
            fill: int) -> dict[Place, list[str]]:  # fmt: skip
    """``keys`` of the range (bits, slot) into the shards of more bits that cover it."""
    more = max(at_least, bits_for(len(keys), fill))
    new_bits = bits + more
    out: dict[Place, list[str]] = {}
    if new_bits == bits:
        out[(stream, bits, slot)] = keys
        return out
    for k in keys:
        child = key_hash(k) >> (HASH_BITS - new_bits)
        out.setdefault((stream, new_bits, child), []).append(k)
    # every place of the range is a shard, empty or not: together they cover it
    first = slot << more
    for child in range(first, first + (1 << more)):
        out.setdefault((stream, new_bits, child), [])
    return out


def helps(shard: Shard, keys: list[str], *, fill: int = FILL_RECORDS) -> bool:
    """Whether splitting ``shard`` would spread its records: the root always splits into its
    streams; a stream shard only with two records or more, within :data:`MAX_BITS`, and not
    when every record would land in one of its successors (a single large or busy record is
    no reason to split again and again)."""
    if shard.stream is None:
        return bool(keys)
    if len(keys) < 2:
        return False
    found = places(shard, keys, fill=fill)
    bits = next(iter(found))[1]
    return bits <= MAX_BITS and max(len(k) for k in found.values()) < len(keys)


def children(
    shard: Shard, records: Map, *, skip_stream: str | None = None, fill: int = FILL_RECORDS
) -> list[Child]:
    """The shards replacing ``shard``, built from its records (the caller holds the session
    and the shard's lock); for the root, of every stream but ``skip_stream``. ``fill``: the
    records a new shard holds at most on average."""
    load = encode.Load()
    found = places(shard, records.keys(), skip_stream=skip_stream, fill=fill)
    out = []
    for (stream, bits, slot), keys in sorted(found.items(), key=lambda item: item[0]):
        items = [_entry(load, k, records.get(k)) for k in keys]
        update, state_vector = encode.shard_update(load, (e for e in items if e is not None))
        out.append(Child(stream, bits, slot, update, state_vector, len(keys)))
    return out


def _entry(load: encode.Load, k: str, value: Any) -> encode.Entry | None:
    if not isinstance(value, Map):
        return None
    fields: Mapping[str, Any] = value.to_py()
    return next(encode.entries(load.entry(k, fields)))
