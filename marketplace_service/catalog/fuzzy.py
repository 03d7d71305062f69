"""Typo-tolerant matching of short queries, without pg_trgm: PostgreSQL finds the entries with a
word that starts like one of the query's words (its first two letters, through the full-text
index), and rapidfuzz ranks them by how close their words are to the query's."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from rapidfuzz import fuzz

WORD = re.compile(r"\w+")
# Short queries only: a typo in a long query still leaves words the full-text search finds.
MAX_WORDS = 3
MIN_WORD = 3  # "ab" is too short to tell a typo from another word
THRESHOLD = 75.0  # fuzz.ratio: "slak" ~ "slack" is 88.9, "slak" ~ "slab" is 75


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def prefixes(query_words: Sequence[str]) -> str | None:
    """The 'simple' tsquery that finds candidates: ``sl:* | hu:*``, or None when the query is
    not short or has no word long enough."""
    usable = [w for w in query_words if len(w) >= MIN_WORD]
    if not usable or len(query_words) > MAX_WORDS:
        return None
    return " | ".join(sorted({f"{w[:2]}:*" for w in usable}))


def score(query_words: Sequence[str], fields: Iterable[str | None]) -> float:
    """The mean, over the query's words, of each word's best match among the fields' words."""
    targets = [w for f in fields if f for w in words(f)]
    if not targets:
        return 0.0
    best = [max(fuzz.ratio(q, t) for t in targets) for q in query_words]
    return sum(best) / len(best)


def rank(query_words: Sequence[str], candidates: Iterable[Any]) -> list[tuple[float, Any]]:
    """Candidates (with ``name``, ``vendor``, ``category``, ``is_featured``) close enough to the
    query, best first: score, then featured, then name."""
    scored = [
        (s, c)
        for c in candidates
        if (s := score(query_words, (c["name"], c["vendor"], c["category"]))) >= THRESHOLD
    ]
    scored.sort(key=lambda sc: (-sc[0], not sc[1]["is_featured"], sc[1]["name"]))
    return scored
