"""Migrations: fresh database, re-apply, a Supabase-shaped database, a broken file."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import asyncpg
import pytest

from common import db, migrate
from tests.support import create_database, drop_database, embedded_cluster

TABLES = {
    "tenants", "users", "memberships", "api_keys", "integration_connectors",
    "marketplace_connectors", "connector_metrics", "audit_logs", "audit_chain_heads",
    "credentials", "oauth_states", "action_runs", "sync_updates", "sync_cursors", "sync_outbox",
    "sync_runs", "ws_tickets", "sync_shards",
}  # fmt: skip


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


@pytest.fixture(scope="module")
def fresh_cluster():
    """A brand-new PostgreSQL: no Supabase roles yet, whatever other tests did."""
    with embedded_cluster("seedos-test-fresh-") as url:
        yield url


async def test_fresh_database_then_reapply_is_noop(fresh_cluster):
    conn = await db.connect(fresh_cluster)
    try:
        assert not await conn.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = 'anon'")
        applied = await migrate.apply(conn)
        expected = [m.version for m in migrate.discover(migrate.default_directory())]
        assert applied == expected
        assert await _tables(conn) >= TABLES
        # every table is closed to Supabase's PostgREST roles: row level security on, no grants
        open_tables = await conn.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind = 'r' AND (NOT c.relrowsecurity"
            " OR has_table_privilege('anon', c.oid, 'SELECT')"
            " OR has_table_privilege('authenticated', c.oid, 'SELECT'))"
        )
        assert [r["relname"] for r in open_tables] == []
        roles = await conn.fetch(
            "SELECT rolname FROM pg_roles WHERE rolname IN ('anon', 'authenticated', 'service_role')"
        )
        assert len(roles) == 3
        recorded = await conn.fetch(
            "SELECT version, name, statements FROM supabase_migrations.schema_migrations ORDER BY version"
        )
        assert [r["version"] for r in recorded] == expected
        assert all(r["statements"] for r in recorded)
        schema_before = await conn.fetchval(
            "SELECT string_agg(table_name || '.' || column_name, ',' ORDER BY 1)"
            " FROM information_schema.columns WHERE table_schema = 'public'"
        )
        assert await migrate.apply(conn) == []
        assert await conn.fetchval(
            "SELECT count(*) FROM supabase_migrations.schema_migrations"
        ) == len(expected)
        schema_after = await conn.fetchval(
            "SELECT string_agg(table_name || '.' || column_name, ',' ORDER BY 1)"
            " FROM information_schema.columns WHERE table_schema = 'public'"
        )
        assert schema_before == schema_after
        # the updated_at trigger works
        tid = await conn.fetchval("INSERT INTO tenants (slug, name) VALUES ('x', 'X') RETURNING id")
        first = await conn.fetchval("SELECT updated_at FROM tenants WHERE id = $1", tid)
        await conn.execute("UPDATE tenants SET name = 'Y' WHERE id = $1", tid)
        assert await conn.fetchval("SELECT updated_at FROM tenants WHERE id = $1", tid) > first
        # audit_logs is append-only
        await conn.execute(
            "INSERT INTO audit_logs (tenant_id, seq, action, hash) VALUES ($1, 1, 'x', '\\x00')",
            tid,
        )
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM audit_logs")
    finally:
        await conn.close()


async def test_applies_on_a_supabase_shaped_database(admin_dsn):
    url = await create_database(admin_dsn, "seedos_supabase")
    conn = await db.connect(url)
    try:
        # what a Supabase project already has (roles are per cluster: create where missing)
        await conn.execute(
            """
            DO $$ BEGIN
              IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
                CREATE ROLE anon NOLOGIN NOINHERIT; END IF;
              IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
                CREATE ROLE authenticated NOLOGIN NOINHERIT; END IF;
              IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
                CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS; END IF;
            END $$;
            CREATE SCHEMA auth;
            CREATE TABLE auth.users (id uuid PRIMARY KEY, email text);
            CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE
              AS $f$ SELECT NULLIF(current_setting('request.jwt.claim.sub', true), '')::uuid $f$;
            INSERT INTO auth.users VALUES (gen_random_uuid(), 'someone@example.com');
            CREATE SCHEMA supabase_migrations;
            CREATE TABLE supabase_migrations.schema_migrations (
              version text NOT NULL PRIMARY KEY, statements text[], name text);
            INSERT INTO supabase_migrations.schema_migrations VALUES ('20200101000000', '{}', 'theirs');
            GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
            ALTER DEFAULT PRIVILEGES IN SCHEMA public
              GRANT ALL ON TABLES TO anon, authenticated, service_role;
            ALTER DEFAULT PRIVILEGES IN SCHEMA public
              GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
            """
        )
        applied = await migrate.apply(conn)
        assert len(applied) == len(migrate.discover(migrate.default_directory()))
        assert await _tables(conn) >= TABLES
        # every table is closed to Supabase's PostgREST roles: row level security on, no grants
        open_tables = await conn.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind = 'r' AND (NOT c.relrowsecurity"
            " OR has_table_privilege('anon', c.oid, 'SELECT')"
            " OR has_table_privilege('authenticated', c.oid, 'SELECT'))"
        )
        assert [r["relname"] for r in open_tables] == []
        assert await conn.fetchval("SELECT count(*) FROM auth.users") == 1
        # PostgREST's roles (anon key, signed-in users) can touch none of our tables
        for table in TABLES:
            for role in ("anon", "authenticated"):
                for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE"):
                    assert not await conn.fetchval(
                        "SELECT has_table_privilege($1, $2, $3)", role, f"public.{table}", privilege
                    ), (role, table, privilege)
            assert await conn.fetchval(
                "SELECT relrowsecurity FROM pg_class WHERE oid = $1::regclass", f"public.{table}"
            ), f"row level security is off on {table}"
        assert await conn.fetchval("SELECT count(*) FROM pg_proc WHERE proname = 'uid'") >= 1
        versions = await conn.fetch("SELECT version FROM supabase_migrations.schema_migrations")
        assert "20200101000000" in {r["version"] for r in versions}
        assert await migrate.apply(conn) == []
    finally:
        await conn.close()
        await drop_database(admin_dsn, url)


async def test_broken_migration_rolls_back_whole_and_names_the_file(admin_dsn, tmp_path):
    folder = tmp_path / "migrations"
    shutil.copytree(migrate.default_directory(), folder)
    (folder / "29991231000000_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\n"
        "INSERT INTO half_done VALUES (1);\n"
        "ALTER TABLE no_such_table ADD COLUMN x int;\n"
    )
    url = await create_database(admin_dsn, "seedos_broken")
    conn = await db.connect(url)
    try:
        with pytest.raises(migrate.MigrationError) as info:
            await migrate.apply(conn, folder)
        message = str(info.value)
        assert "29991231000000_broken.sql" in message
        assert "statement 3" in message and "no_such_table" in message
        assert await conn.fetchval("SELECT to_regclass('public.half_done')") is None
        versions = {
            r["version"]
            for r in await conn.fetch("SELECT version FROM supabase_migrations.schema_migrations")
        }
        assert "29991231000000" not in versions
        assert len(versions) == len(migrate.discover(migrate.default_directory()))
    finally:
        await conn.close()
        await drop_database(admin_dsn, url)


def test_migration_files_are_named_and_ordered():
    found = migrate.discover(migrate.default_directory())
    assert found and [m.version for m in found] == sorted(m.version for m in found)
    bad = Path(tempfile.mkdtemp()) / "create_things.sql"
    bad.write_text("SELECT 1;")
    with pytest.raises(ValueError, match="YYYYMMDDHHMMSS"):
        migrate.discover(bad.parent)
