"""Where a record lives: the shards of an install, and the pure function that places a key.

An install's records are held by shards, each one Yjs document with the usual layout (root map
``records``, keys ``<stream>/<primary key>``). A new install has one shard, its *root* (the
install's own id), holding every stream. Once the root outgrows :data:`MAX_RECORDS` records or
:data:`MAX_BYTES` it splits, and from then on every stream has shards of its own:

* a record key's hash is the CRC-32 (IEEE 802.3, as ``zlib.crc32``) of its UTF-8 bytes, an
  unsigned 32-bit number;
* a stream's live shards each take the keys whose hash's top ``bits`` equal their ``slot``
  (``hash >> (32 - bits) == slot``; a shard with ``bits`` 0 takes every key of the stream),
  and together they cover every hash exactly once;
* a shard that outgrows the bound splits into shards with more bits (its two halves, or more
  when it is far over), which replace it; a first load builds as many shards as its records
  need at once (:func:`bits_for`).

So a client that knows a stream's live shards (``GET sync/shards``) can place any key itself,
and ``GET sync/shards/for`` does it for it.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from common.errors import NotFound, SeedosError

MAX_RECORDS = 512  # a shard holding more splits
MAX_BYTES = 1024 * 1024  # so does one whose snapshot and log take more
FILL_RECORDS = 256  # what a shard is built with, at most on average: room to grow before splitting
HASH_BITS = 32
MAX_BITS = 24


def key_hash(record_key: str) -> int:
    """The hash that places ``<stream>/<primary key>``: CRC-32 of its UTF-8 bytes."""
    return zlib.crc32(record_key.encode("utf-8", "surrogatepass"))


def bits_for(records: int, fill: int = FILL_RECORDS) -> int:
    """The bits a stream of ``records`` is built with: the fewest that leave each shard at most
    ``fill`` records on average."""
    bits = 0
    while (records >> bits) > fill and bits < MAX_BITS:
        bits += 1
    return bits


class ShardSplit(SeedosError):
    status, code, title = 410, "shard_split", "The shard was split"

    def __init__(self, shard_id: uuid.UUID) -> None:
        super().__init__(
            f"shard {shard_id} was split: its records are in other shards now (GET sync/shards,"
            " or GET sync/shards/for with the keys you want)"
        )
        self.shard_id = shard_id


class ShardNotFound(NotFound):
    code, title = "shard_not_found", "No such shard"


@dataclass(frozen=True, slots=True)
class Shard:
    id: uuid.UUID
    integration_id: uuid.UUID
    stream: str | None  # None: the root shard, every stream
    bits: int = 0
    slot: int = 0

    @property
    def is_root(self) -> bool:
        return self.stream is None

    @property
    def start(self) -> int:
        """The first hash it covers."""
        return self.slot << (HASH_BITS - self.bits)

    def holds(self, record_key: str, hashed: int | None = None) -> bool:
        """Whether the key belongs here (not whether the record exists)."""
        if self.stream is None:
            return True
        stream, slash, _ = record_key.partition("/")
        if not slash or stream != self.stream:
            return False
        if self.bits == 0:
            return True
        h = key_hash(record_key) if hashed is None else hashed
        return h >> (HASH_BITS - self.bits) == self.slot

    def describe(self) -> str:
        return "root" if self.stream is None else f"{self.stream} {self.bits}/{self.slot}"


class Layout:
    """An install's live shards at one moment: a cache, never the authority (a session on a
    shard that was split meanwhile says so, and the caller reads the layout again)."""

    def __init__(self, integration_id: uuid.UUID, shards: Iterable[Shard]) -> None:
        self.integration_id = integration_id
        self.root: Shard | None = None
        self.streams: dict[str, list[Shard]] = {}
        for shard in shards:
            if shard.stream is None:
                self.root = shard
            else:
                self.streams.setdefault(shard.stream, []).append(shard)
        for found in self.streams.values():
            found.sort(key=lambda s: s.start)

    def route(self, record_key: str, hashed: int | None = None) -> Shard | None:
        """The live shard that holds (or would hold) the key; None when its stream has no
        shard yet (the root is split and the stream never had records)."""
        if self.root is not None:
            return self.root
        stream = record_key.partition("/")[0]
        found = self.streams.get(stream)
        if not found:
            return None
        h = key_hash(record_key) if hashed is None else hashed
        lo, hi = 0, len(found) - 1  # the last shard starting at or before h
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if found[mid].start <= h:
                lo = mid
            else:
                hi = mid - 1
        shard = found[lo]
        return shard if shard.holds(record_key, h) else None

    def of_stream(self, stream: str) -> list[Shard]:
        """The shards holding a stream's records, in hash order."""
        if self.root is not None:
            return [self.root]
        return list(self.streams.get(stream, ()))
