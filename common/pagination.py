"""Opaque keyset cursors: base64url JSON of the sort key of the last item returned."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import Query

from common.errors import InvalidRequest

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")]
CursorParam = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` from the previous page")
]


def encode_cursor(key: list[Any]) -> str:
    """A cursor for the sort key ``key``; every part is written as a string, which is what
    :func:`decode_cursor` reads back (through its parser) whatever the part's type."""
    raw = json.dumps([str(part) for part in key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class InvalidCursor(InvalidRequest):
    code, title = "invalid_cursor", "Invalid cursor"

    def __init__(self) -> None:
        super().__init__("the cursor is not one this API issued")


def decode_cursor(cursor: str | None, *, parse: Sequence[Callable[[Any], Any]]) -> list[Any] | None:
    """The sort key in a cursor, each part passed through its parser (``datetime.fromisoformat``,
    ``uuid.UUID``, ``str`` ...). Anything malformed is :class:`InvalidCursor` (422)."""
    if cursor is None:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(key, list) or len(key) != len(parse):
            raise InvalidCursor()
        parts = [convert(_require_str(part)) for convert, part in zip(parse, key, strict=True)]
    except (binascii.Error, ValueError, TypeError, AttributeError, UnicodeDecodeError):
        raise InvalidCursor() from None
    # what PostgreSQL would refuse as a parameter (NUL or a lone surrogate in text, integers
    # beyond 64 bits), and what no page ends at (NaN and infinite floats)
    for part in parts:
        if not _storable(part):
            raise InvalidCursor()
    return parts


def _storable(part: Any) -> bool:
    if isinstance(part, str):
        try:
            part.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return "\x00" not in part
    if isinstance(part, float):
        return math.isfinite(part)
    if isinstance(part, int):
        return -(2**63) <= part < 2**63
    return True


def _require_str(part: Any) -> str:
    if not isinstance(part, str):
        raise TypeError("cursor parts are strings")
    return part
