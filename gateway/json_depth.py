"""How deeply a JSON document nests, told from its bytes before anything parses it.

Parsers recurse once per array or object: ``json.loads`` and pydantic stop only at their
recursion limits, after the work. This never recurses and runs in C-speed passes over the
bytes: escapes are dropped (so every quote left opens or closes a string), then every byte but
quotes and brackets, then whatever lies between quotes (brackets inside text do not count);
the depth is the highest running sum of the brackets left (+1 opening, -1 closing).
"""

from __future__ import annotations

from itertools import accumulate

_MARKS = bytes.maketrans(b"{}", b"[]")  # objects nest as arrays do
_NOT_MARKS = bytes(sorted(set(range(256)) - set(b'"[]{}')))
_STEPS = bytes.maketrans(b"[]", b"\x01\xff")  # +1 and -1 as signed bytes


def deeper_than(document: bytes, limit: int) -> bool:
    """Whether arrays and objects in ``document`` nest more than ``limit`` levels deep
    (``[]`` is one level, ``{"a": [1]}`` two).

    Exact for JSON; for text that is not JSON it never says less than a parser reaches before
    it fails. At most about 40 ns a byte (a body of nothing but brackets), and a body with
    fewer than ``limit`` brackets is not looked at further.
    """
    if document.count(b"[") + document.count(b"{") <= limit:
        return False
    if b"\\" in document:  # inside strings only; pairs first: in \\" the quote is real
        document = document.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = document.translate(_MARKS, _NOT_MARKS)
    if b'"' in marks:
        # '""' is an empty string, or one string's end and the next's start with nothing
        # between them: either way no structure is lost. Then every other piece is text.
        marks = b"".join(marks.replace(b'""', b"").split(b'"')[::2])
    if b"[" * (limit + 1) in marks:
        return True
    steps = memoryview(marks.translate(_STEPS)).cast("b")
    return max(accumulate(steps), default=0) > limit
