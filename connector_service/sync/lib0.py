"""Reading lib0-encoded messages (var-uints, length-prefixed bytes and strings) safely.

pycrdt's ``Decoder`` is pure Python and reads a var-uint of any length in time that grows with
the square of its bytes: a 1 MB frame of continuation bytes would hold the event loop for minutes.
This one reads at most 10 bytes per var-uint (values below 2**64), checks every length against
what is left, and raises :class:`Malformed` (a ValueError) instead of anything else.
"""

from __future__ import annotations

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
