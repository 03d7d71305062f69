"""Reading lib0-encoded messages (var-uints, length-prefixed bytes and strings) safely.

pycrdt's ``Decoder`` is pure Python and reads a var-uint of any length in time that grows with
the square of its bytes: a 1 MB frame of continuation bytes would hold the event loop for minutes.
This one reads at most 10 bytes per var-uint (values below 2**64), checks every length against
what is left, and raises :class:`Malformed` (a ValueError) instead of anything else.

Below it, the few facts about Yjs updates (format v1) the server needs without applying one:
which items an update holds beyond a state vector, whether a document lacks part of an update
it applied, and the clock ranges (per client id) of the items an update holds and deletes.
"""

from __future__ import annotations

from collections.abc import Collection

from pycrdt import Encoder, get_update

MAX_VAR_UINT_BYTES = 10
Ranges = dict[int, list[tuple[int, int]]]  # per Yjs client id, [start, end) clock ranges


class Malformed(ValueError):
    pass


class Decoder:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    @property
    def length(self) -> int:
        """Bytes not read yet."""
        return len(self._data) - self._pos

    def read_var_uint(self) -> int:
        value = shift = 0
        for _ in range(MAX_VAR_UINT_BYTES):
            if self._pos >= len(self._data):
                raise Malformed("truncated var-uint")
            byte = self._data[self._pos]
            self._pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                if value >= 1 << 64:
                    raise Malformed("var-uint too large")
                return value
            shift += 7
        raise Malformed("var-uint longer than 10 bytes")

    def read_byte(self) -> int:
        if self._pos >= len(self._data):
            raise Malformed("truncated")
        self._pos += 1
        return self._data[self._pos - 1]

    def skip(self, size: int) -> None:
        if size > self.length:
            raise Malformed("length beyond the end of the message")
        self._pos += size

    def read_message(self) -> bytes:
        """A var-uint length, then that many bytes."""
        size = self.read_var_uint()
        if size > self.length:
            raise Malformed("length beyond the end of the message")
        start, self._pos = self._pos, self._pos + size
        return bytes(self._data[start : self._pos])

    def read_var_string(self) -> str:
        try:
            return self.read_message().decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed("not UTF-8") from None

    def read_messages(self) -> list[bytes]:
        """Every length-prefixed message to the end."""
        out = []
        while self.length:
            out.append(self.read_message())
        return out


def encode_state_vector(clocks: dict[int, int]) -> bytes:
    encoder = Encoder()
    encoder.write_var_uint(len(clocks))
    for client, clock in clocks.items():
        encoder.write_var_uint(client)
        encoder.write_var_uint(clock)
    return encoder.to_bytes()


def decode_state_vector(state_vector: bytes) -> dict[int, int]:
    """A Yjs state vector as {client: clock} (encodings may order clients differently)."""
    decoder = Decoder(state_vector)
    count = decoder.read_var_uint()
    return {decoder.read_var_uint(): decoder.read_var_uint() for _ in range(count)}


def lacks(state_vector: bytes, update: bytes) -> bool:
    """Whether a document at ``state_vector``, having applied ``update``, still lacks part of
    it: items, or deletions of items, beyond what it holds. A document keeps those aside
    (pending) until the items they depend on arrive, with whatever update brings them."""
    rest = get_update(update, state_vector)
    if not adds_nothing(rest):
        return True
    needed = {
        client: max(end for _, end in ranges)
        for client, ranges in deleted_ranges(rest).items()
        if ranges
    }
    if not needed:
        return False
    clocks = clocks_of(state_vector, needed)
    return any(end > clocks.get(client, 0) for client, end in needed.items())


def clocks_of(state_vector: bytes, clients: Collection[int]) -> dict[int, int]:
    """The clocks of ``clients`` in a state vector, reading no further than they are (a busy
    document's state vector holds every client that ever wrote to it)."""
    decoder = Decoder(state_vector)
    found: dict[int, int] = {}
    for _ in range(decoder.read_var_uint()):
        client, clock = decoder.read_var_uint(), decoder.read_var_uint()
        if client in clients:
            found[client] = clock
            if len(found) == len(clients):
                break
    return found


def adds_beyond(update: bytes, clocks: dict[int, int]) -> bool:
    """Whether ``update`` holds items of a client of ``clocks`` from its clock there on
    (integrable alone or not: ``pycrdt.get_state`` sees only items that are). ValueError if
    the update is malformed."""
    at = encode_state_vector(clocks)
    beyond = encode_state_vector(dict.fromkeys(clocks, 2**53))
    return get_update(update, at) != get_update(update, beyond)


def adds_nothing(update: bytes) -> bool:
    """An update with no items at all: it only deletes (if anything)."""
    return Decoder(update).read_var_uint() == 0


def deleted_ranges(update: bytes) -> dict[int, list[tuple[int, int]]]:
    """The delete set of an update without items (:func:`adds_nothing`): per client id, the
    [start, end) clock ranges of the items it deletes. ValueError if it holds items."""
    decoder = Decoder(update)
    if decoder.read_var_uint() != 0:
        raise ValueError("not a delete set alone")
    return _read_delete_set(decoder)


def without(
    ranges: dict[int, list[tuple[int, int]]], known: dict[int, list[tuple[int, int]]]
) -> dict[int, list[tuple[int, int]]]:
    """``ranges`` less what ``known`` covers (both per client id, [start, end) ranges)."""
    out: dict[int, list[tuple[int, int]]] = {}
    for client, wanted in ranges.items():
        cover = sorted(known.get(client, ()))
        for start, end in wanted:
            for s, e in cover:
                if e <= start or s >= end:
                    continue
                if s > start:
                    out.setdefault(client, []).append((start, s))
                start = max(start, e)
                if start >= end:
                    break
            if start < end:
                out.setdefault(client, []).append((start, end))
    return out


# A Yjs update (format v1): per client, its structs from a first clock; then the delete set.
# Struct info byte: the low 5 bits are the content kind (0 GC, 10 skip, else an item), 0x80 an
# origin follows, 0x40 a right origin, 0x20 (with neither) a parent key.
GC, SKIP = 0, 10
ANY_FIXED = {124: 4, 123: 8, 122: 8}  # float32, float64, bigint64
MAX_ANY_DEPTH = 64


def read_update(update: bytes) -> tuple[Ranges, Ranges]:
    """The [start, end) clock ranges, per client id, of the structs an update holds (items and
    garbage-collected ones, not the gaps a merged update skips), and of the items its delete
    set deletes. Read, not applied: ranges that do not follow what a document has stay pending
    there. :class:`Malformed` if it is not a v1 update."""
    decoder = Decoder(update)
    items: Ranges = {}
    for _ in range(decoder.read_var_uint()):
        count, client, clock = (decoder.read_var_uint() for _ in range(3))
        for _ in range(count):
            start = clock
            info = decoder.read_byte()
            kind = info & 0x1F
            if kind in (GC, SKIP):
                clock += decoder.read_var_uint()
            else:
                clock += _skip_item(decoder, info)
            if kind != SKIP and clock > start:
                _add(items.setdefault(client, []), start, clock)
    return items, _read_delete_set(decoder)


def _add(ranges: list[tuple[int, int]], start: int, end: int) -> None:
    if ranges and ranges[-1][1] == start:
        ranges[-1] = (ranges[-1][0], end)
    else:
        ranges.append((start, end))


def _read_delete_set(decoder: Decoder) -> dict[int, list[tuple[int, int]]]:
    out: dict[int, list[tuple[int, int]]] = {}
    for _ in range(decoder.read_var_uint()):
        ranges = out.setdefault(decoder.read_var_uint(), [])
        for _ in range(decoder.read_var_uint()):
            start = decoder.read_var_uint()
            ranges.append((start, start + decoder.read_var_uint()))
    return out


def _skip_item(decoder: Decoder, info: int) -> int:
    """Read an item past its origins and parent; its length in clock ticks."""
    for flag in (0x80, 0x40):  # origin, right origin: an id each
        if info & flag:
            decoder.read_var_uint(), decoder.read_var_uint()
    if not info & 0xC0:  # no origin: the parent follows (a root name, or an item's id)
        if decoder.read_var_uint() == 1:
            decoder.read_message()
        else:
            decoder.read_var_uint(), decoder.read_var_uint()
        if info & 0x20:
            decoder.read_message()  # the key in a map
    kind = info & 0x1F
    if kind in (1, 2, 8):  # deleted, JSON, any: a count, then that many values
        n = decoder.read_var_uint()
        if kind == 2:
            for _ in range(n):
                decoder.read_message()
        elif kind == 8:
            for _ in range(n):
                _skip_any(decoder, 0)
        return n
    if kind == 4:  # a string: as long as its UTF-16 code units
        return len(decoder.read_var_string().encode("utf-16-le")) // 2
    if kind in (3, 5):  # binary, embed
        decoder.read_message()
    elif kind == 6:  # format: a key, a JSON value
        decoder.read_message(), decoder.read_message()
    elif kind == 7:  # a type: its kind; an XML element or hook, a name too
        if decoder.read_var_uint() in (3, 5):
            decoder.read_message()
    elif kind == 9:  # a subdocument: its guid and options
        decoder.read_message()
        _skip_any(decoder, 0)
    else:
        raise Malformed(f"unknown item content {kind}")
    return 1


def _skip_any(decoder: Decoder, depth: int) -> None:
    """One lib0 ``any`` value."""
    if depth > MAX_ANY_DEPTH:
        raise Malformed("values nested too deep")
    kind = decoder.read_byte()
    if kind in (127, 126, 121, 120):  # undefined, null, false, true
        return
    if kind == 125:  # a signed var-int
        for _ in range(MAX_VAR_UINT_BYTES):
            if not decoder.read_byte() & 0x80:
                break
        else:
            raise Malformed("var-int longer than 10 bytes")
    elif kind in ANY_FIXED:
        decoder.skip(ANY_FIXED[kind])
    elif kind in (119, 116):  # string, bytes
        decoder.read_message()
    elif kind == 118:  # object
        for _ in range(decoder.read_var_uint()):
            decoder.read_message()
            _skip_any(decoder, depth + 1)
    elif kind == 117:  # array
        for _ in range(decoder.read_var_uint()):
            _skip_any(decoder, depth + 1)
    else:
        raise Malformed(f"unknown value type {kind}")
