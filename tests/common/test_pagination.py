"""Cursors: what the API issued comes back as it was; anything else is 422 invalid_cursor."""

from __future__ import annotations

import base64
import json

import pytest

from common.pagination import InvalidCursor, decode_cursor, encode_cursor


def _forged(parts: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).rstrip(b"=").decode()


def test_an_issued_cursor_round_trips():
    key = ["1.2999999999999998", "Zoho CRM ✓"]
    assert decode_cursor(encode_cursor(key), parse=(float, str)) == [1.2999999999999998, key[1]]
    assert decode_cursor(None, parse=(str,)) is None


@pytest.mark.parametrize(
    ("parts", "parse"),
    [
        (["\ud800"], (str,)),  # a lone surrogate PostgreSQL cannot store
        (["a\x00b"], (str,)),
        (["nan", "x"], (float, str)),
        (["inf", "x"], (float, str)),
        (["-inf", "x"], (float, str)),
        (["1e400", "x"], (float, str)),  # infinite once parsed
        (["9223372036854775808", "x"], (int, str)),
        ([1, "x"], (int, str)),  # parts are strings
        (["x"], (str, str)),
    ],
)
def test_a_forged_cursor_is_refused(parts, parse):
    with pytest.raises(InvalidCursor):
        decode_cursor(_forged(parts), parse=parse)


def test_garbage_is_refused():
    for cursor in ("!!!", "e30", _forged({"a": 1})):  # not base64, {} , not a list
        with pytest.raises(InvalidCursor):
            decode_cursor(cursor, parse=(str,))
