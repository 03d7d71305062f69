"""Apply ``migrations/*.sql`` in order, recorded the way the Supabase CLI records them.

Each file runs in one transaction: a failure rolls the whole file back and names the file and
the statement. Applied versions live in ``supabase_migrations.schema_migrations`` (version = the
file's timestamp), so ``supabase migration list`` sees the same history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import sqlparse

FILE_PATTERN = re.compile(r"^(\d{14})_([A-Za-z0-9_]+)\.sql$")
_LOCK_KEY = 0x5EED05  # advisory lock: one migrator at a time

_BOOKKEEPING = """
CREATE SCHEMA IF NOT EXISTS supabase_migrations;
CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (
    version TEXT NOT NULL PRIMARY KEY,
    statements TEXT[],
    name TEXT
);
"""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    def statements(self) -> list[str]:
        text = self.path.read_text()
        return [
            s.strip()
            for s in sqlparse.split(text)
            if sqlparse.format(s, strip_comments=True).strip()
        ]


class MigrationError(RuntimeError):
    def __init__(self, migration: Migration, index: int, statement: str, cause: Exception) -> None:
        self.migration = migration
        self.index = index
        self.statement = statement
        self.cause = cause
        first_line = statement.strip().splitlines()[0] if statement.strip() else ""
        super().__init__(
            f"migration {migration.path.name} failed at statement {index + 1} "
            f"({first_line[:80]!r}): {cause}; the file was rolled back"
        )


def default_directory() -> Path:
    """migrations/ in a checkout, or the copy packaged inside the wheel."""
    packaged = Path(__file__).resolve().parents[1] / "seedos_cli" / "migrations"
    checkout = Path(__file__).resolve().parents[1] / "migrations"
    return checkout if checkout.is_dir() else packaged


def discover(directory: Path) -> list[Migration]:
    if not directory.is_dir():
        raise ValueError(f"{directory} is not a folder of migrations")
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = FILE_PATTERN.match(path.name)
        if not match:
            raise ValueError(f"{path.name}: migration files are named YYYYMMDDHHMMSS_name.sql")
        found.append(Migration(version=match[1], name=match[2], path=path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError("two migration files share a version")
    return found


async def applied_versions(conn: asyncpg.Connection) -> set[str]:
    await conn.execute(_BOOKKEEPING)
    rows = await conn.fetch("SELECT version FROM supabase_migrations.schema_migrations")
    return {r["version"] for r in rows}


async def apply(conn: asyncpg.Connection, directory: Path | None = None) -> list[str]:
    """Apply pending migrations; return the versions applied now (empty when up to date)."""
    migrations = discover(directory or default_directory())
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        done = await applied_versions(conn)
        applied: list[str] = []
        for migration in migrations:
            if migration.version in done:
                continue
            statements = migration.statements()
            async with conn.transaction():
                for index, statement in enumerate(statements):
                    try:
                        await conn.execute(statement)
                    except asyncpg.PostgresError as exc:
                        raise MigrationError(migration, index, statement, exc) from exc
                await conn.execute(
                    "INSERT INTO supabase_migrations.schema_migrations (version, statements, name)"
                    " VALUES ($1, $2, $3)",
                    migration.version,
                    statements,
                    migration.name,
                )
            applied.append(migration.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
