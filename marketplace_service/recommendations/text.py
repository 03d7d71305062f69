"""Matching a tenant's free-text description against connector descriptions: TF-IDF over the
catalog (name, vendor, category and description of each entry), cosine similarity.

Deliberately plain: lowercase word tokens, a short stop list, a crude plural fold. The index is
built once per refresh; a description is scored through an inverted index, so only entries that
share a word with it are touched.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
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

    def words(self, doc: frozenset[str], top: int = 3) -> list[str]:
        """The description's weightiest words that the entry shares."""
        shared = sorted((w for w in self.query if w in doc), key=lambda w: (-self.query[w], w))
        return shared[:top]


class TextIndex:
    """TF-IDF vectors of the catalog's entries, L2-normalised, in an inverted index."""

    def __init__(self, documents: Sequence[str]) -> None:
        counts = [Counter(tokens(doc)) for doc in documents]
        self.size = len(documents)
        self.doc_words = [frozenset(c) for c in counts]
        df: Counter[str] = Counter()
        for c in counts:
            df.update(c.keys())
        n = max(len(documents), 1)
        self.idf = {w: math.log((1 + n) / (1 + d)) + 1.0 for w, d in df.items()}
        postings: dict[str, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
        for i, c in enumerate(counts):
            weights = {w: (1 + math.log(tf)) * self.idf[w] for w, tf in c.items()}
            norm = math.sqrt(sum(v * v for v in weights.values())) or 1.0
            for w, v in weights.items():
                items, values = postings[w]
                items.append(i)
                values.append(v / norm)
        self._postings = {
            w: (np.array(items, dtype=np.int64), np.array(values))
            for w, (items, values) in postings.items()
        }

    def match(self, text: str | None) -> Match | None:
        """Cosine similarity of ``text`` to every entry, or None when it shares no word."""
        counts = Counter(t for t in tokens(text) if t in self._postings)
        if not counts:
            return None
        query = {w: (1 + math.log(tf)) * self.idf[w] for w, tf in counts.items()}
        norm = math.sqrt(sum(v * v for v in query.values()))
        scores = np.zeros(self.size)
        for w, q in query.items():
            items, weights = self._postings[w]
            scores[items] += weights * (q / norm)  # an entry appears once per word's postings
        return Match(scores, query)
