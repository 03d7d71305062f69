"""Every line of SQL of the demo CRM: the SQLite database, its schema and its queries.

One writer connection (writes are serialised by a lock, each in a ``BEGIN IMMEDIATE``
transaction) and a few reader connections; SQLite runs in WAL mode so readers never wait for
the writer. Blocking calls run in worker threads through :func:`asyncio.to_thread`.

Timestamps are integer microseconds since the Unix epoch. :meth:`Transaction.next_timestamp`
hands out strictly increasing values (never below the wall clock, never equal to the previous
one, also across restarts), so ``(updated_at, id)`` orders every change exactly once.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS companies (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    domain TEXT,
    industry TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
);
CREATE INDEX IF NOT EXISTS companies_updated ON companies (updated_at, id);

CREATE TABLE IF NOT EXISTS contacts (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    first_name TEXT,
    last_name TEXT,
    phone TEXT,
    company_id TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
);
CREATE INDEX IF NOT EXISTS contacts_updated ON contacts (updated_at, id);
CREATE UNIQUE INDEX IF NOT EXISTS contacts_live_email
    ON contacts (email COLLATE NOCASE) WHERE deleted_at IS NULL;
"""


@dataclass(frozen=True)
class Kind:
    """One record type: its table, id prefix and writable fields (in column order)."""

    table: str
    id_prefix: str
    fields: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return ("id", *self.fields, "created_at", "updated_at", "deleted_at")


CONTACTS = Kind("contacts", "c_", ("email", "first_name", "last_name", "phone", "company_id"))
COMPANIES = Kind("companies", "co_", ("name", "domain", "industry"))
KINDS = {kind.table: kind for kind in (CONTACTS, COMPANIES)}

Row = tuple[Any, ...]


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -32768")  # 32 MiB, enough for 100k-row bulk inserts
    return conn


def _now_us() -> int:
    return time.time_ns() // 1000


class Transaction:
    """A write transaction: the writer connection and the timestamp clock."""

    def __init__(self, conn: sqlite3.Connection, database: Database) -> None:
        self.conn = conn
        self._database = database

    def next_timestamp(self) -> int:
        """A timestamp strictly greater than every one handed out before."""
        ts = max(_now_us(), self._database.last_timestamp + 1)
        self._database.last_timestamp = ts
        return ts

    def next_timestamps(self, count: int) -> range:
        """``count`` consecutive strictly increasing timestamps."""
        first = max(_now_us(), self._database.last_timestamp + 1)
        self._database.last_timestamp = first + count - 1
        return range(first, first + count)


class Database:
    """The SQLite file of one demo CRM process."""

    def __init__(self, path: Path, *, readers: int = 4) -> None:
        self.path = path
        self.last_timestamp = 0
        self._readers_count = readers
        self._writer: sqlite3.Connection | None = None
        self._write_lock = threading.Lock()
        self._readers: queue.Queue[sqlite3.Connection] = queue.Queue()

    def open(self) -> None:
        """Create the file and schema if needed and open the connections (blocking)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = _connect(self.path)
        writer.execute("PRAGMA journal_mode = WAL")
        writer.executescript(SCHEMA)
        self.last_timestamp = max_timestamp(writer)
        self._writer = writer
        for _ in range(self._readers_count):
            self._readers.put(_connect(self.path))

    def close(self) -> None:
        """Close every connection (blocking)."""
        while not self._readers.empty():
            self._readers.get_nowait().close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def read(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(conn, *args, **kwargs)`` on a reader connection in a worker thread."""
        return await asyncio.to_thread(self._read, fn, *args, **kwargs)

    async def write(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(transaction, *args, **kwargs)`` in one write transaction in a worker thread.

        The transaction commits when ``fn`` returns and rolls back when it raises.
        """
        return await asyncio.to_thread(self._write, fn, *args, **kwargs)

    def _read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        conn = self._readers.get()
        try:
            return fn(conn, *args, **kwargs)
        finally:
            self._readers.put(conn)

    def _write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._write_lock, self._transaction() as tx:
            return fn(tx, *args, **kwargs)

    @contextmanager
    def _transaction(self) -> Iterator[Transaction]:
        assert self._writer is not None, "database is not open"
        before = self.last_timestamp
        self._writer.execute("BEGIN IMMEDIATE")
        try:
            yield Transaction(self._writer, self)
        except BaseException:
            self._writer.execute("ROLLBACK")
            self.last_timestamp = before
            raise
        self._writer.execute("COMMIT")


def max_timestamp(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT max(coalesce((SELECT max(updated_at) FROM contacts), 0),"
        " coalesce((SELECT max(updated_at) FROM companies), 0))"
    ).fetchone()
    return int(row[0])


def select_page(
    conn: sqlite3.Connection, kind: Kind, *, after: tuple[int, str], live_only: bool, limit: int
) -> list[Row]:
    """Up to ``limit`` rows ordered by ``(updated_at, id)`` strictly after ``after``."""
    live = " AND deleted_at IS NULL" if live_only else ""
    sql = (
        f"SELECT {', '.join(kind.columns)} FROM {kind.table}"
        f" WHERE (updated_at, id) > (?, ?){live} ORDER BY updated_at, id LIMIT ?"
    )
    return conn.execute(sql, (*after, limit)).fetchall()


def select_one(conn: sqlite3.Connection, kind: Kind, record_id: str) -> Row | None:
    """The row with this id, tombstone or not."""
    sql = f"SELECT {', '.join(kind.columns)} FROM {kind.table} WHERE id = ?"
    return conn.execute(sql, (record_id,)).fetchone()


def live_contact_with_email(conn: sqlite3.Connection, email: str, *, other_than: str) -> str | None:
    """The id of a live contact (other than ``other_than``) with this email, if any."""
    row = conn.execute(
        "SELECT id FROM contacts WHERE email = ? COLLATE NOCASE AND deleted_at IS NULL AND id != ?",
        (email, other_than),
    ).fetchone()
    return row[0] if row else None


def insert(tx: Transaction, kind: Kind, record_id: str, values: dict[str, Any]) -> None:
    ts = tx.next_timestamp()
    columns = ("id", *kind.fields, "created_at", "updated_at")
    params = (record_id, *(values.get(f) for f in kind.fields), ts, ts)
    tx.conn.execute(
        f"INSERT INTO {kind.table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        params,
    )


def update(tx: Transaction, kind: Kind, record_id: str, values: dict[str, Any]) -> None:
    """Set the given fields, bump ``updated_at`` and clear any tombstone."""
    assignments = "".join(f"{field} = ?, " for field in values)
    tx.conn.execute(
        f"UPDATE {kind.table} SET {assignments}updated_at = ?, deleted_at = NULL WHERE id = ?",
        (*values.values(), tx.next_timestamp(), record_id),
    )


def mark_deleted(tx: Transaction, kind: Kind, record_id: str) -> None:
    """Turn a row into a tombstone: ``deleted_at`` set, ``updated_at`` bumped."""
    ts = tx.next_timestamp()
    tx.conn.execute(
        f"UPDATE {kind.table} SET deleted_at = ?, updated_at = ? WHERE id = ?",
        (ts, ts, record_id),
    )


def insert_many(tx: Transaction, kind: Kind, rows: Sequence[Sequence[Any]]) -> int:
    """Insert ``(id, *fields)`` rows with fresh timestamps; skip ones that would collide."""
    columns = ("id", *kind.fields, "created_at", "updated_at")
    stamps = tx.next_timestamps(len(rows))
    sql = (
        f"INSERT OR IGNORE INTO {kind.table} ({', '.join(columns)})"
        f" VALUES ({', '.join('?' * len(columns))})"
    )
    before = tx.conn.total_changes
    tx.conn.executemany(sql, ((*row, ts, ts) for row, ts in zip(rows, stamps, strict=True)))
    return tx.conn.total_changes - before


def count(conn: sqlite3.Connection, kind: Kind, *, live_only: bool = False) -> int:
    live = " WHERE deleted_at IS NULL" if live_only else ""
    return int(conn.execute(f"SELECT count(*) FROM {kind.table}{live}").fetchone()[0])


def sample_ids(conn: sqlite3.Connection, kind: Kind, *, limit: int) -> list[str]:
    """Ids of up to ``limit`` live records, for associating seeded contacts with companies."""
    sql = f"SELECT id FROM {kind.table} WHERE deleted_at IS NULL LIMIT ?"
    return [row[0] for row in conn.execute(sql, (limit,))]


def delete_everything(tx: Transaction, kinds: Iterable[Kind] = KINDS.values()) -> None:
    for kind in kinds:
        tx.conn.execute(f"DELETE FROM {kind.table}")
