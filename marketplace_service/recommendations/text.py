"""Matching a tenant's free-text description against connector descriptions: TF-IDF over the
catalog (name, vendor, category and description of each entry), cosine similarity.

Deliberately plain: lowercase word tokens, a short stop list, a crude plural fold. The index is
built once per refresh; a description is scored through an inverted index, so only entries that
share a word with it are touched.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_WORD = re.compile(r"[a-z0-9]+")
STOP = frozenset(
    """a an and are as at be by for from has have in into is it its of on or our the their
    them this to us using uses via we with without your you connector connectors api apis
    platform service services cloud app apps application tool tools software online data
    company companies business team teams based built""".split()  # noqa: SIM905
)


def tokens(text: str | None) -> list[str]:
    """Words of two letters or more, stop words dropped, a trailing plural 's' folded."""
    out = []
    for word in _WORD.findall((text or "").lower()):
        if len(word) < 2 or word in STOP:
            continue
        if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.append(word)
    return out


@dataclass(frozen=True)
class Match:
    scores: np.ndarray  # cosine similarity per catalog entry (0 where nothing is shared)
    query: dict[str, float]  # the description's words with their TF-IDF weights


class TextIndex:
    """TF-IDF vectors of the catalog's entries, L2-normalised, as an inverted index in CSR
    form: the entries (ascending) and weights of word ``w`` are at ``ptr[w]:ptr[w + 1]``."""

    def __init__(self, documents: Sequence[str]) -> None:
        counts = [Counter(tokens(doc)) for doc in documents]
        self.size = len(documents)
        df: Counter[str] = Counter()
        for c in counts:
            df.update(c.keys())
        n = max(len(documents), 1)
        self.vocabulary = {w: k for k, w in enumerate(sorted(df))}
        self.idf = np.array([math.log((1 + n) / (1 + df[w])) + 1.0 for w in self.vocabulary])
        words, entries, values = [], [], []
        for i, c in enumerate(counts):
            ids = [self.vocabulary[w] for w in c]
            weights = np.array([(1 + math.log(tf)) for tf in c.values()]) * self.idf[ids]
            norm = float(np.sqrt((weights**2).sum())) or 1.0
            words.extend(ids)
            entries.extend([i] * len(ids))
            values.extend((weights / norm).tolist())
        word_ids = np.array(words, dtype=np.int64)
        order = np.lexsort((np.array(entries, dtype=np.int64), word_ids))
        self.entries = np.array(entries, dtype=np.int64)[order]
        self.weights = np.array(values)[order]
        self.ptr = np.zeros(len(self.vocabulary) + 1, dtype=np.int64)
        np.cumsum(np.bincount(word_ids, minlength=len(self.vocabulary)), out=self.ptr[1:])

    def match(self, text: str | None) -> Match | None:
        """Cosine similarity of ``text`` to every entry, or None when it shares no word."""
        counts = Counter(t for t in tokens(text) if t in self.vocabulary)
        if not counts:
            return None
        query = {w: (1 + math.log(tf)) * self.idf[self.vocabulary[w]] for w, tf in counts.items()}
        norm = math.sqrt(sum(v * v for v in query.values()))
        scores = np.zeros(self.size)
        for w, q in query.items():
            k = self.vocabulary[w]
            lo, hi = self.ptr[k], self.ptr[k + 1]
            scores[self.entries[lo:hi]] += self.weights[lo:hi] * (q / norm)
        return Match(scores, {w: float(q) for w, q in query.items()})

    def shared_words(self, match: Match, entry: int, top: int = 3) -> list[str]:
        """The description's weightiest words that ``entry`` also has."""
        found = []
        for w in sorted(match.query, key=lambda w: (-match.query[w], w)):
            k = self.vocabulary[w]
            column = self.entries[self.ptr[k] : self.ptr[k + 1]]
            pos = int(np.searchsorted(column, entry))
            if pos < len(column) and column[pos] == entry:
                found.append(w)
                if len(found) == top:
                    break
        return found
