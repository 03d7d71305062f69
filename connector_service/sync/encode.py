"""Yjs updates for new shards, written directly: what a first load of many records builds.

Building a document with pycrdt costs about 15 µs a record and loading the result 5 µs; a first
load of a million records would spend most of its time there. A shard made by a first load is
new, written by one Yjs client, and holds nothing but records: its update is a simple sequence
of items, which this module writes itself, in the Yjs update format v1 (``yjs``'s
``encodeStateAsUpdate``; the ``Item.write`` of yjs 13 and the ``Any`` encoding of Yrs):

* the update: the number of clients (1), then this client's block: how many items, the client
  id, the first clock (0), the items; then an empty delete set;
* a record: an item of the root map ``records`` (info ``0x27``: a type, with a parent key),
  parent given by name, its key, content a ``Y.Map`` (type ref 1);
* each field: an item whose parent is the record's item (info ``0x28``: any-content, with a
  parent key), given by id (client, clock), its name, content one JSON scalar, encoded as Yrs
  does (a string 119, ``true`` 120, ``false`` 121, ``null`` 126, a number as a 32-bit float
  (124) when that is exact, else a 64-bit float (123), big-endian; an integer no float holds
  exactly, as a 64-bit big integer (122)).

The result is checked against pycrdt and the ``yjs`` package in the tests: both load it into the
same records a pycrdt build gives.

A record is encoded while its page is pulled (:meth:`Load.entry`), before its shard is known;
only the id of its item depends on where it lands, and every field item names that id as its
parent. So a field is written with a placeholder parent, the record's first clock taken as 0
(``0x28 0x00``, the client, ``0x00``), and :func:`shard_update` puts the real clock in with one
``bytes.replace`` per record. The placeholder cannot be found anywhere else: the load's client
id is chosen so that its var-uint starts with three ``0xff`` bytes, which UTF-8 never holds, and
it has no prefix that is also its suffix, so occurrences cannot overlap; a record whose values
happen to hold it all the same (a float's bytes) is counted at encoding and kept in a plain
length-prefixed form instead.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable, Iterator, Mapping
from itertools import chain
from typing import Any

import orjson

ROOT_ITEM = b"\x27\x01\x07records"  # type content, parent by name "records", then the key
MAP_TYPE = b"\x01"  # YMap's type ref
FIELD_INFO = b"\x28\x00"  # any content, parent by id
_names: dict[str, bytes] = {}
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")
PLAIN = 1  # an entry's flag: its fields are length-prefixed, not placeholder-joined
DELETED = 2  # an entry's flag: the record was reported deleted (no fields)


def var_uint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [bytes((n,)) for n in range(0x80)]
_STRING = [b"\x77" + bytes((n,)) for n in range(0x80)]


def _head(n: int) -> bytes:
    return _SMALL[n] if n < 0x80 else var_uint(n)


def _value(value: Any) -> bytes:
    if type(value) is str:
        raw = value.encode("utf-8", "surrogatepass")
        size = len(raw)
        return (_STRING[size] if size < 0x80 else b"\x77" + var_uint(size)) + raw
    return any_value(value)


def var_string(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    return var_uint(len(raw)) + raw


def any_value(value: Any) -> bytes:
    """One JSON scalar in lib0's ``writeAny`` encoding, as Yrs writes it (an integer a 64-bit
    float cannot hold exactly, within 64 bits, as a big integer, 122: as pycrdt keeps it)."""
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")
        return b"\x77" + var_uint(len(raw)) + raw
    if value is True:
        return b"\x78"
    if value is False:
        return b"\x79"
    if value is None:
        return b"\x7e"
    if isinstance(value, int) and -(2**63) <= value < 2**63 and int(float(value)) != value:
        return b"\x7a" + value.to_bytes(8, "big", signed=True)  # what a float would round
    if isinstance(value, (int, float)):
        number = float(value)
        packed = _F32.pack(number) if abs(number) <= 3.4e38 else b""
        if packed and _F32.unpack(packed)[0] == number:
            return b"\x7c" + packed
        return b"\x7b" + _F64.pack(number)
    # an object or an array: its JSON text, as records.to_fields keeps it
    raw = orjson.dumps(value)
    return b"\x77" + var_uint(len(raw)) + raw


def field_name(name: str) -> bytes:
    found = _names.get(name)
    if found is None:
        found = var_string(name)
        if len(_names) < 4096:
            _names[name] = found
    return found


def new_client() -> int:
    """A Yjs client id of 29 to 32 bits whose var-uint is ``ff ff ff``, a byte of 0x80 or more
    and one of 1 to 15: none of them ``0x28`` or ``0x00``, so the placeholder has no border (no
    prefix that is also a suffix); see the module's docstring."""
    return (random.randrange(1 << 7, 1 << 11) << 21) | 0x1FFFFF


class Load:
    """Encodes the records of one first load, all with the same Yjs client id."""

    def __init__(self, client: int | None = None) -> None:
        self.client = new_client() if client is None else client
        self.placeholder = FIELD_INFO + var_uint(self.client) + b"\x00"
        self._shapes: dict[tuple[str, ...], list[bytes]] = {}  # field names -> item prefixes

    def entry(self, record_key: str, fields: Mapping[str, Any]) -> bytes:
        """A record, ready to be placed in a shard once its shard is known: a var-uint
        ``fields << 2 | flags``, its key as a length-prefixed var-string, then its fields,
        length-prefixed as a whole (a field that is an object or an array as its JSON text,
        as :func:`records.to_fields` keeps it). Runs for every record of a first load: written
        for speed (the records of a page share their field names: what those encode to is
        kept per shape)."""
        names = tuple(fields)
        prefixes = self._shapes.get(names) or self._shape(names)
        values = list(map(_value, fields.values()))
        blob = b"".join(chain.from_iterable(zip(prefixes, values, strict=True)))
        flag = 0
        if blob.count(self.placeholder) != len(values):  # a value holds it: the plain form
            plain = [field_name(n) + b"\x01" + v for n, v in zip(names, values, strict=True)]
            blob, flag = b"".join(var_uint(len(p)) + p for p in plain), PLAIN
        raw = record_key.encode("utf-8", "surrogatepass")
        key = _head(len(raw)) + raw
        return _head(len(values) << 2 | flag) + _head(len(key)) + key + _head(len(blob)) + blob

    def _shape(self, names: tuple[str, ...]) -> list[bytes]:
        prefixes = [self.placeholder + field_name(name) + b"\x01" for name in names]
        if len(self._shapes) < 256:
            self._shapes[names] = prefixes
        return prefixes

    @staticmethod
    def deletion(record_key: str) -> bytes:
        """A record reported deleted, as an entry (a later one of the same key wins)."""
        key = var_string(record_key)
        return var_uint(DELETED) + var_uint(len(key)) + key + b"\x00"


Entry = tuple[bytes, int, bytes, int]  # key part, number of fields, fields, flag


def entries(chunk: bytes) -> Iterator[Entry]:
    """The records of concatenated :meth:`Load.entry` bytes."""
    pos, end = 0, len(chunk)
    while pos < end:
        found, pos = _read_entry(chunk, pos)
        yield found


def hashed_entries(chunk: bytes) -> Iterator[tuple[int, Entry]]:
    """The records of concatenated entries each preceded by the 4 bytes (big-endian) of its
    key's hash, as first loads stage them."""
    pos, end = 0, len(chunk)
    while pos < end:
        hashed = int.from_bytes(chunk[pos : pos + 4], "big")
        found, pos = _read_entry(chunk, pos + 4)
        yield hashed, found


def _read_entry(chunk: bytes, pos: int) -> tuple[Entry, int]:
    head, pos = _read_var_uint(chunk, pos)
    size, pos = _read_var_uint(chunk, pos)
    key = chunk[pos : pos + size]
    size, pos = _read_var_uint(chunk, pos + size)
    return (key, head >> 2, chunk[pos : pos + size], head & 3), pos + size


def key_of(key_part: bytes) -> str:
    """The record key of an entry's key part (a var-string)."""
    _, pos = _read_var_uint(key_part, 0)
    return key_part[pos:].decode("utf-8", "surrogatepass")


def shard_update(load: Load, records: Iterable[Entry]) -> tuple[bytes, bytes]:
    """The update of a new document holding ``records``, written by the load's client, and
    its state vector."""
    client_id = var_uint(load.client)
    field_head = FIELD_INFO + client_id
    placeholder = load.placeholder
    items: list[bytes] = []
    clock = 0
    for key_part, count, fields, flag in records:
        if flag & DELETED:
            continue
        items.append(ROOT_ITEM + key_part + MAP_TYPE)
        if count:
            prefix = field_head + var_uint(clock)
            if flag & PLAIN:
                items.append(prefix + prefix.join(_plain_parts(fields)))
            else:
                items.append(fields.replace(placeholder, prefix))
        clock += 1 + count
    if not clock:  # nothing: the empty update
        return b"\x00\x00", b"\x00"
    head = b"\x01" + var_uint(clock) + client_id + b"\x00"
    return head + b"".join(items) + b"\x00", b"\x01" + client_id + var_uint(clock)


def _plain_parts(fields: bytes) -> list[bytes]:
    parts, pos = [], 0
    while pos < len(fields):
        size, pos = _read_var_uint(fields, pos)
        parts.append(fields[pos : pos + size])
        pos += size
    return parts


def _read_var_uint(data: bytes, pos: int) -> tuple[int, int]:
    byte = data[pos]
    if byte < 0x80:
        return byte, pos + 1
    n = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            return n, pos
        shift += 7
