"""Reading lib0-encoded messages (var-uints, length-prefixed bytes and strings) safely.

pycrdt's ``Decoder`` is pure Python and reads a var-uint of any length in time that grows with
the square of its bytes: a 1 MB frame of continuation bytes would hold the event loop for minutes.
This one reads at most 10 bytes per var-uint (values below 2**64), checks every length against
what is left, and raises :class:`Malformed` (a ValueError) instead of anything else.

Below it, the few facts about Yjs updates (format v1) the server needs without applying one:
which items an update holds beyond a state vector, and what an update that holds no items
deletes (a delete set: per client id, clock ranges).
"""

from __future__ import annotations

from pycrdt import Encoder, get_update

MAX_VAR_UINT_BYTES = 10


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
    out: dict[int, list[tuple[int, int]]] = {}
    for _ in range(decoder.read_var_uint()):
        ranges = out.setdefault(decoder.read_var_uint(), [])
        for _ in range(decoder.read_var_uint()):
            start = decoder.read_var_uint()
            ranges.append((start, start + decoder.read_var_uint()))
    return out


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
