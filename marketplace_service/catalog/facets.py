"""The catalog in memory for search: per-category counts and typo candidates, kept current by
PostgreSQL's notifications.

Counting a broad query's matches per category in SQL reads every matching row: 10 ms for the
7,000 of 10,000 entries that contain "connector", since each row is wide and each search vector
is read and matched (no index answers "how many per category"). The service instead keeps, per
entry (in id order), its category, auth scheme, featured flag and verification level, and
inverted indexes of the search and title vectors' lexemes (lexeme -> entries, lexemes sorted,
so the entries of a prefix are one slice), and counts with numpy in about 0.1 ms. Typo
candidates (entries holding a corrected title word, not matching the query) come from the same
arrays, and the reading's title words are what the typo vocabulary (fuzzy.py) corrects and
ranks with.

Freshness: a trigger notifies ``seedos_catalog`` when marketplace_connectors changes (migration
``catalog_notify``); each replica listens on a connection of its own and then reads the catalog
again (the index is built in a thread). A reading answers only while no change is known since it
began and the listening connection is up; an entry published on this replica makes it stale at
once, before the notification arrives. Otherwise, and for a query term this index cannot
evaluate exactly (anything but one lexeme, prefix or not: ``'foo':* <-> 'bar':*``), SQL answers
(``repository.category_counts`` and ``fuzzy_candidates``), exact but slower.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog

from common.db import Database
from common.listen import listen_forever
from common.service import settle_heap
from marketplace_service.catalog import fuzzy, repository

log = structlog.get_logger(component="marketplace.facets")

CHANNEL = "seedos_catalog"
# One lexeme, as tsquery text prints it, optionally a prefix: 'connector':* or 'a'. A lexeme
# with a quote or a backslash (printed escaped) is left to SQL.
_TERM = re.compile(r"'([^'\\]+)'(:\*)?")


def term(text: str) -> tuple[str, bool] | None:
    """(lexeme, is a prefix) of a normalized query term, or None when it is not one lexeme."""
    found = _TERM.fullmatch(text)
    return (found[1], bool(found[2])) if found else None


def _after_prefix(prefix: str) -> str | None:
    """The least string after every string that starts with ``prefix`` (None: there is none)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


@dataclass(frozen=True)
class _Postings:
    """An inverted index: the entries (slots, ascending) holding ``lexemes[k]`` are
    ``at[ptr[k]:ptr[k + 1]]``. Lexemes are sorted, so the entries of a prefix are one slice."""

    lexemes: list[str]
    ptr: np.ndarray
    at: np.ndarray

    @classmethod
    def of(cls, vectors: Iterable[Iterable[str]]) -> _Postings:
        postings: dict[str, list[int]] = {}
        for slot, lexemes in enumerate(vectors):
            for lexeme in lexemes:
                postings.setdefault(lexeme, []).append(slot)
        lexemes = sorted(postings)
        ptr = np.zeros(len(lexemes) + 1, dtype=np.int64)
        np.cumsum([len(postings[x]) for x in lexemes], out=ptr[1:])
        at = np.fromiter((s for x in lexemes for s in postings[x]), np.int32, count=int(ptr[-1]))
        return cls(lexemes, ptr, at)

    def holding(self, lexeme: str, prefix: bool, into: np.ndarray) -> np.ndarray:
        """Marks in ``into`` the entries holding ``lexeme`` (or, with ``prefix``, a lexeme that
        starts with it)."""
        lo = bisect.bisect_left(self.lexemes, lexeme)
        if prefix:
            after = _after_prefix(lexeme)
            hi = len(self.lexemes) if after is None else bisect.bisect_left(self.lexemes, after)
        else:
            hi = lo + 1 if lo < len(self.lexemes) and self.lexemes[lo] == lexeme else lo
        into[self.at[self.ptr[lo] : self.ptr[hi]]] = True
        return into


@dataclass(frozen=True)
class Reading:
    """The catalog as it was read once (never changed). Entries are in id order (their slots),
    as ``ORDER BY id`` gives them."""

    ids: list[uuid.UUID]
    names: list[str]
    slots: dict[uuid.UUID, int]
    categories: list[str]  # category code -> name ('' for none), sorted
    category: np.ndarray  # slot -> category code
    schemes: dict[str, int]  # auth scheme -> code
    scheme: np.ndarray  # slot -> auth scheme code
    featured: np.ndarray  # slot -> is featured
    levels: dict[str | None, int]  # verification level (None: not rated) -> code
    level: np.ndarray  # slot -> verification level code
    search: _Postings  # the search vectors' lexemes (what a query must match)
    title: _Postings  # the title vectors' lexemes (what typo candidates are found by)
    titles: fuzzy._Titles  # the title words, for ranking typo candidates (same slots)

    @classmethod
    def read(cls, rows: Sequence[Sequence[Any]], version: Any = None) -> Reading:
        """``rows``: :func:`repository.facet_rows`; ``version`` the catalog's fingerprint."""
        categories = sorted({r[1] or "" for r in rows})
        codes = {c: i for i, c in enumerate(categories)}
        schemes = {s: i for i, s in enumerate(sorted({r[2] for r in rows}))}
        levels = {v: i for i, v in enumerate(sorted({r[8] for r in rows}, key=str))}
        return cls(
            ids=[r[0] for r in rows],
            names=[r[5] for r in rows],
            slots={r[0]: slot for slot, r in enumerate(rows)},
            categories=categories,
            category=np.array([codes[r[1] or ""] for r in rows], dtype=np.int32),
            schemes=schemes,
            scheme=np.array([schemes[r[2]] for r in rows], dtype=np.int32),
            featured=np.array([bool(r[3]) for r in rows], dtype=bool),
            levels=levels,
            level=np.array([levels[r[8]] for r in rows], dtype=np.int32),
            search=_Postings.of(r[4] for r in rows),
            title=_Postings.of(r[7] for r in rows),
            titles=fuzzy._Titles.read(((r[0], r[5], r[6], r[1]) for r in rows), version),
        )

    def category_of(self, slot: int) -> str | None:
        return self.categories[self.category[slot]] or None

    def _none(self) -> np.ndarray:
        return np.zeros(len(self.ids), dtype=bool)

    def _matching(self, terms: Iterable[tuple[str, bool]]) -> np.ndarray:
        """The entries whose search vector matches every term."""
        chosen = np.ones(len(self.ids), dtype=bool)
        for lexeme, prefix in terms:
            chosen &= self.search.holding(lexeme, prefix, self._none())
        return chosen

    def _filtered(
        self,
        chosen: np.ndarray,
        *,
        auth_scheme: str | None,
        featured: bool | None,
        installed: tuple[bool, Iterable[uuid.UUID]] | None,
        verification: str | None = None,
    ) -> np.ndarray:
        if auth_scheme is not None:
            chosen &= self.scheme == self.schemes.get(auth_scheme, -1)
        if featured is not None:
            chosen &= self.featured == featured
        if verification is not None:
            chosen &= self.level == self.levels.get(verification, -1)
        if installed is not None:
            wanted, entries = installed
            mine = self._none()
            mine[[s for e in entries if (s := self.slots.get(e)) is not None]] = True
            chosen &= mine if wanted else ~mine
        return chosen

    def counts(
        self,
        terms: Iterable[tuple[str, bool]],
        *,
        auth_scheme: str | None,
        featured: bool | None,
        installed: tuple[bool, Iterable[uuid.UUID]] | None,
        verification: str | None = None,
    ) -> dict[str, int]:
        """Entries per category matching every term, under the filters given: the result of
        ``repository.category_counts`` (``installed``: (wanted, the tenant's entries))."""
        chosen = self._filtered(
            self._matching(terms), auth_scheme=auth_scheme, featured=featured,
            installed=installed, verification=verification,
        )  # fmt: skip
        per = np.bincount(self.category[chosen], minlength=len(self.categories))
        return {c: int(n) for c, n in zip(self.categories, per, strict=True) if n}

    def matching_ids(
        self,
        terms: Iterable[tuple[str, bool]],
        *,
        category: str | None,
        auth_scheme: str | None,
        featured: bool | None,
        installed: tuple[bool, Iterable[uuid.UUID]] | None,
        verification: str | None = None,
    ) -> list[uuid.UUID]:
        """The entries matching every term under every filter."""
        chosen = self._filtered(
            self._matching(terms), auth_scheme=auth_scheme, featured=featured,
            installed=installed, verification=verification,
        )  # fmt: skip
        if category is not None:
            code = bisect.bisect_left(self.categories, category)
            if code == len(self.categories) or self.categories[code] != category:
                return []
            chosen &= self.category == code
        return [self.ids[s] for s in np.flatnonzero(chosen).tolist()]

    def typo_candidates(
        self,
        lexemes: Iterable[str],
        terms: Sequence[tuple[str, bool]],
        *,
        auth_scheme: str | None,
        featured: bool | None,
        installed: tuple[bool, Iterable[uuid.UUID]] | None,
        limit: int,
        verification: str | None = None,
    ) -> np.ndarray:
        """The slots of ``repository.fuzzy_candidates``: entries with one of ``lexemes`` in
        their title vector that do not match every term, under the filters given, the first
        ``limit`` by id."""
        chosen = self._none()
        for lexeme in lexemes:
            self.title.holding(lexeme, False, chosen)
        if terms:  # no query excludes nothing (as an empty tsquery matches nothing)
            chosen &= ~self._matching(terms)
        chosen = self._filtered(
            chosen, auth_scheme=auth_scheme, featured=featured, installed=installed,
            verification=verification,
        )  # fmt: skip
        return np.flatnonzero(chosen)[:limit]


class Facets:
    """The current :class:`Reading`, when there is one known to be current. Each reading's
    title words also go to ``vocabulary`` (typo corrections and ranking), which keeps using the
    latest one while none is current."""

    def __init__(self, vocabulary: fuzzy.Vocabulary | None = None) -> None:
        self._vocabulary = vocabulary
        self._reading: Reading | None = None
        self._read_at = -1  # the change count when the reading began
        self._changes = 0  # changes known (notifications, local publishes, lost listening)
        self._listening = False
        self._changed = asyncio.Event()

    @property
    def current(self) -> Reading | None:
        if self._listening and self._read_at == self._changes:
            return self._reading
        return None

    def changed(self) -> None:
        """The catalog changed (or may have): stop answering until it is read again."""
        self._changes += 1
        self._changed.set()

    def _listening_now(self, listening: bool) -> None:
        self._listening = listening
        self.changed()  # notifications may have been missed: read again

    async def keep_current(self, db: Database, dsn: str, *, application_name: str) -> None:
        """Listen for changes and read the catalog again after each, until cancelled."""
        listening = listen_forever(
            dsn, CHANNEL, lambda _payload: self.changed(), application_name=application_name,
            on_listening=lambda: self._listening_now(True),
            on_lost=lambda: self._listening_now(False),
        )  # fmt: skip
        listener = asyncio.create_task(listening, name="catalog-listen")
        try:
            await self._read_forever(db)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _read_forever(self, db: Database) -> None:
        while True:
            await self._changed.wait()
            await asyncio.sleep(0.02)  # a burst of changes (a catalog load) is read once
            self._changed.clear()
            if not self._listening:
                continue  # nothing read now could be trusted; listening again sets _changed
            began = self._changes
            try:
                async with db.connection() as conn, conn.transaction(isolation="repeatable_read"):
                    version = await repository.catalog_version(conn)
                    rows = await repository.facet_rows(conn)
                reading = await asyncio.to_thread(Reading.read, rows, version)
            except Exception as exc:  # the database may be down: SQL counts meanwhile
                log.warning("catalog_read_failed", error=type(exc).__name__)
                await asyncio.sleep(1)
                self._changed.set()
                continue
            self._reading, self._read_at = reading, began
            if self._vocabulary is not None:
                self._vocabulary.use(reading.titles)
            del rows
            settle_heap()  # the reading lives until the next change: out of the collector's way
