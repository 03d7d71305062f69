"""Upgrading a database written before shards: each install's one document becomes its root
shard (the install's own id), snapshot and log kept, and the store reads it as before."""

from __future__ import annotations

import shutil
import uuid

import asyncpg
from pycrdt import Doc, Map

from common import db, migrate
from connector_service.sync.store import DocStore
from tests.support import create_database, drop_database

SHARDS = "20261215090000_sync_shards.sql"


async def _write_old_document(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> uuid.UUID:
    """What the version before shards wrote for a document: a snapshot in
    integration_connectors.sync_version covering the log through sync_log_through, and the
    updates appended since in sync_updates (integration_id)."""
    iid = await conn.fetchval(
        "INSERT INTO integration_connectors (tenant_id, connector_name, service_name)"
        " VALUES ($1, 'old', 'old-crm') RETURNING id",
        tenant_id,
    )
    doc = Doc()
    records = doc.get("records", type=Map)
    with doc.transaction():
        for i in range(50):
            records[f"contacts/{i}"] = Map({"name": f"n{i}"})
    snapshot = doc.get_update()
    folded = await conn.fetchval(
        "INSERT INTO sync_updates (integration_id, origin, \"update\")"
        " VALUES ($1, 'external', $2) RETURNING id",
        iid, snapshot,
    )  # fmt: skip
    await conn.execute("DELETE FROM sync_updates WHERE id = $1", folded)  # folded into:
    await conn.execute(
        "UPDATE integration_connectors SET sync_version = $2, sync_log_through = $3 WHERE id = $1",
        iid, snapshot, folded,
    )  # fmt: skip
    for i in (3, 7):  # appended after the snapshot
        before = doc.get_state()
        records[f"contacts/{i}"]["name"] = f"changed {i}"
        await conn.execute(
            "INSERT INTO sync_updates (integration_id, origin, \"update\")"
            " VALUES ($1, 'client', $2)",
            iid, doc.get_update(before),
        )  # fmt: skip
    return iid


async def test_documents_written_before_shards_become_root_shards(admin_dsn, tmp_path):
    older = tmp_path / "migrations"
    shutil.copytree(migrate.default_directory(), older)
    for later in older.glob("*.sql"):  # the schema as the version before shards left it
        if later.name >= SHARDS:
            later.unlink()
    dsn = await create_database(admin_dsn, "seedos_shard_upgrade")
    try:
        conn = await db.connect(dsn)
        try:
            await migrate.apply(conn, older)
            tenant = await conn.fetchval(
                "INSERT INTO tenants (slug, name) VALUES ('old-co', 'Old Co') RETURNING id"
            )
            iid = await _write_old_document(conn, tenant)
            empty = await conn.fetchval(
                "INSERT INTO integration_connectors (tenant_id, connector_name, service_name)"
                " VALUES ($1, 'never synced', 'old-crm') RETURNING id",
                tenant,
            )
            await migrate.apply(conn)  # the upgrade
            root = await conn.fetchrow("SELECT * FROM sync_shards WHERE id = $1", iid)
            assert root["integration_id"] == iid and root["stream"] is None
            assert root["log_through"] > 0 and root["bytes"] == len(root["snapshot"])
            assert await conn.fetchval("SELECT count(*) FROM sync_updates WHERE shard_id = $1",
                                       iid) == 2  # fmt: skip
            assert await conn.fetchval("SELECT count(*) FROM sync_shards WHERE id = $1", empty)
            # a new install gets its root shard with its own id
            new = await conn.fetchval(
                "INSERT INTO integration_connectors (tenant_id, connector_name, service_name)"
                " VALUES ($1, 'new', 'old-crm') RETURNING id",
                tenant,
            )
            assert await conn.fetchval("SELECT integration_id FROM sync_shards WHERE id = $1",
                                       new) == new  # fmt: skip
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=db._init_connection)
        try:
            store = DocStore(db.Database(pool, acquire_timeout=10))
            async with store.session(iid) as live:
                got = live.records.to_py()
            assert len(got) == 50 and got["contacts/3"] == {"name": "changed 3"}
            assert got["contacts/7"] == {"name": "changed 7"} and got["contacts/8"] == {
                "name": "n8"
            }
            async with store.session(empty) as live:
                assert live.records.to_py() == {}
        finally:
            await pool.close()
    finally:
        await drop_database(admin_dsn, dsn)
