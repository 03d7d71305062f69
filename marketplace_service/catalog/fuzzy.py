"""Typo-tolerant matching of short queries, without pg_trgm.

The service keeps the catalog's titles (every entry's name, vendor and category, as words) in
memory, read again with the install counts. A query word close to a title word by edit
distance (rapidfuzz) stands for it: "slak" for "slack". PostgreSQL then finds the entries with
those words through the title index (under the request's filters), and the candidates are
ranked by how close their words are to what was typed: each query word is compared once with
every distinct title word, and each candidate's score is gathered from that table with numpy
(the candidates of a short word can be a thousand entries)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process

# Letters and digits; an underscore separates words ("google_sheets"), as full-text search
# reads it, and as a phrase it would match nothing in the stripped search vectors.
WORD = re.compile(r"[^\W_]+")
ALPHA = re.compile(r"[^\W\d_]+")
# Short queries only: a typo in a long query still leaves words the full-text search finds.
MAX_WORDS = 3
MIN_WORD = 3  # "ab" is too short to tell a typo from another word
THRESHOLD = 75.0  # fuzz.ratio: "slak" ~ "slack" is 88.9, "slak" ~ "slab" is 75
PER_WORD = 5  # title words a query word may stand for


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def _typo_targets(words: Iterable[str]) -> list[str]:
    """The words a typo may stand for: three letters or more, no digits, sorted."""
    return sorted(w for w in words if len(w) >= MIN_WORD and ALPHA.fullmatch(w))


def title_words(*fields: str | None) -> list[str]:
    return [w for f in fields if f for w in words(f)]


@dataclass(frozen=True)
class _Titles:
    """One reading of the catalog's titles (replaced whole, never changed)."""

    version: Any = None  # what the catalog's fingerprint was when read
    words: list[str] = field(default_factory=list)  # what a typo may stand for, sorted
    table: list[str] = field(default_factory=list)  # every distinct title word
    slots: dict[uuid.UUID, int] = field(default_factory=dict)  # entry -> its slot
    # the table positions of the words of the entry in slot p: at[ptr[p]:ptr[p + 1]]
    ptr: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    at: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @classmethod
    def read(cls, titles: Iterable[Sequence[Any]], version: Any = None) -> _Titles:
        index: dict[str, int] = {}
        slots: dict[uuid.UUID, int] = {}
        lengths: list[int] = []
        at: list[int] = []
        for entry, *fields in titles:
            slots[entry] = len(slots)
            found = [index.setdefault(w, len(index)) for w in title_words(*fields)]
            at += found
            lengths.append(len(found))
        ptr = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=ptr[1:])
        words = _typo_targets(index)
        return cls(version, words, list(index), slots, ptr, np.array(at, dtype=np.int64))

    def closeness(self, query_words: Sequence[str], slots: Sequence[int]) -> np.ndarray:
        """For each entry in ``slots``: the mean, over the query's words, of each word's best
        match among the entry's title words (0 to 100; 0 for an entry without words). Each query
        word is compared once with each distinct word these entries have (rapidfuzz ``cdist``),
        and each entry's best match gathered from that table with numpy."""
        picked = np.asarray(slots, dtype=np.int64)
        closeness = np.zeros(len(picked))
        starts = self.ptr[picked]
        lengths = self.ptr[picked + 1] - starts
        has = lengths > 0
        if not has.any() or not query_words:
            return closeness
        starts, lengths = starts[has], lengths[has]
        # the table positions of every entry's words, one run per entry
        offsets = np.cumsum(lengths) - lengths
        positions = self.at[np.repeat(starts - offsets, lengths) + np.arange(lengths.sum())]
        used, at = np.unique(positions, return_inverse=True)
        ratios = process.cdist(
            query_words, [self.table[w] for w in used], scorer=fuzz.ratio, dtype=np.float32
        )
        # each query word's best match within each entry's run, then the mean
        closeness[has] = np.maximum.reduceat(ratios[:, at], offsets, axis=1).mean(axis=0)
        return closeness


class Vocabulary:
    """The catalog's title words: the words a typo may stand for (three letters or more, no
    digits) and each entry's words, for ranking. Replaced whole when the catalog changed; an
    entry published on this replica is added at once."""

    def __init__(self) -> None:
        self._titles = _Titles()

    @property
    def words(self) -> list[str]:
        return self._titles.words

    @property
    def version(self) -> Any:
        return self._titles.version

    def replace(self, titles: Iterable[Sequence[Any]], *, version: Any = None) -> None:
        """``titles``: every entry's (id, name, vendor, category). Safe to call from a thread:
        the new reading is built aside and swapped in by one assignment."""
        self._titles = _Titles.read(titles, version)

    def use(self, titles: _Titles) -> None:
        """A reading built elsewhere (with the catalog's other in-memory index, facets.py)."""
        self._titles = titles

    def add(self, entry: uuid.UUID, *fields: str | None) -> None:
        """A just-published entry, found at once on this replica (after the others, until the
        next reading)."""
        old = self._titles
        index = {w: i for i, w in enumerate(old.table)}
        found = [index.setdefault(w, len(index)) for w in title_words(*fields)]
        words = _typo_targets(index)
        slot = len(old.ptr) - 1  # a new slot, also for an entry already known (republished)
        self._titles = _Titles(
            None, words, list(index), {**old.slots, entry: slot},
            np.append(old.ptr, old.ptr[-1] + len(found)), np.append(old.at, found),
        )  # fmt: skip

    def corrections(self, query_words: Sequence[str]) -> list[str]:
        """Title words close to the query's (each query word may stand for a few), or nothing
        when the query is not short."""
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

    def rank(
        self, query_words: Sequence[str], candidates: Sequence[Any]
    ) -> list[tuple[float, int]]:
        """(closeness, position in ``candidates``) of the candidates (with ``id``, ``name``,
        ``vendor``, ``category``) close enough to the query, in no particular order.

        Closeness is the mean, over the query's words, of each word's best match among the
        words of the candidate's name, vendor and category (0 to 100)."""
        titles, n = self._titles, len(candidates)
        if not n or not query_words:
            return []
        closeness, slots, known = np.zeros(n), [], []
        for k, c in enumerate(candidates):
            if (slot := titles.slots.get(c["id"])) is None:  # published since the last reading
                fields = title_words(c["name"], c["vendor"], c["category"])
                closeness[k] = score(query_words, fields)
            else:
                slots.append(slot)
                known.append(k)
        if known:
            closeness[known] = titles.closeness(query_words, slots)
        close = np.flatnonzero(closeness >= THRESHOLD)
        return list(zip(closeness[close].tolist(), close.tolist(), strict=True))


def score(query_words: Sequence[str], targets: Sequence[str]) -> float:
    """The mean, over the query's words, of each word's best match among ``targets``."""
    if not targets:
        return 0.0
    best = [max(fuzz.ratio(q, t) for t in targets) for q in query_words]
    return sum(best) / len(best)
