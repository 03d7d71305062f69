"""Typo-tolerant matching of short queries, without pg_trgm.

The service keeps the catalog's title vocabulary (every word of every name, vendor and
category) in memory, counted again with the install counts. A query word close to a
vocabulary word by edit distance (rapidfuzz) stands for it: "slak" for "slack". PostgreSQL
then finds the entries with those words through the title index, and rapidfuzz ranks them by
how close their words are to what was typed."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from rapidfuzz import fuzz, process

WORD = re.compile(r"\w+")
# Short queries only: a typo in a long query still leaves words the full-text search finds.
MAX_WORDS = 3
MIN_WORD = 3  # "ab" is too short to tell a typo from another word
THRESHOLD = 75.0  # fuzz.ratio: "slak" ~ "slack" is 88.9, "slak" ~ "slab" is 75
PER_WORD = 5  # vocabulary words a query word may stand for


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


class Vocabulary:
    """The title words of the catalog, replaced whole when counted again."""

    def __init__(self, words: Iterable[str] = ()) -> None:
        self.words: list[str] = sorted(set(words))

    def replace(self, words: Iterable[str]) -> None:
        self.words = sorted(set(words))

    def add(self, *texts: str | None) -> None:
        """The words of a just-published entry, found at once on this replica."""
        self.words = sorted(set(self.words).union(*(words(t) for t in texts if t)))

    def corrections(self, query_words: Sequence[str]) -> list[str]:
        """Vocabulary words close to the query's (each query word may stand for a few), or
        nothing when the query is not short."""
        usable = [w for w in query_words if len(w) >= MIN_WORD]
        if not usable or len(query_words) > MAX_WORDS or not self.words:
            return []
        found: set[str] = set()
        for word in usable:
            matches = process.extract(
                word, self.words, scorer=fuzz.ratio, score_cutoff=THRESHOLD, limit=PER_WORD
            )
            found.update(m[0] for m in matches)
        return sorted(found)


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
