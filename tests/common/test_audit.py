"""The audit writer and the chain check on a database of their own: intact chains verify, and
every kind of tampering (done as the owner, with the append-only trigger off) is found at the
entry where it happened."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from common import audit, db, migrate
from tests.support import connected, create_database, drop_database, migrated_database


@pytest.fixture(scope="module")
async def audit_dsn(admin_dsn: str) -> AsyncIterator[str]:
    async with migrated_database(admin_dsn, "seedos_audit") as url:
        yield url


@pytest.fixture
async def fresh_conn(admin_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A database of its own, for checks of every chain in it."""
    async with migrated_database(admin_dsn, "seedos_audit_all") as url, connected(url) as c:
        yield c


@pytest.fixture
async def conn(audit_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    async with connected(audit_dsn) as c:
        yield c


async def write_chain(conn: asyncpg.Connection, length: int = 5) -> uuid.UUID:
    """A new tenant's chain of ``length`` entries, one transaction each."""
    tenant_id = uuid.uuid4()
    for i in range(1, length + 1):
        async with conn.transaction():
            seq = await audit.record(
                conn, tenant_id=tenant_id, actor=f"apikey:{i}", action="integration.updated",
                target=f"integration:{uuid.uuid4()}", payload={"n": i}, request_id=f"req-{i}",
            )  # fmt: skip
        assert seq == i
    return tenant_id


async def tamper(conn: asyncpg.Connection, sql: str, *args: object) -> None:
    """What an owner could do: switch the append-only trigger off, change rows, switch it on."""
    async with conn.transaction():
        await conn.execute("ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_no_update")
        await conn.execute(sql, *args)
        await conn.execute("ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_no_update")


async def only_break(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> audit.Break:
    result = await audit.verify(conn, tenant_id)
    assert len(result.breaks) == 1, result.breaks
    assert result.breaks[0].tenant_id == tenant_id
    return result.breaks[0]


async def test_intact_chains_verify(fresh_conn):
    conn = fresh_conn
    tenant_id = await write_chain(conn, 5)
    async with conn.transaction():  # several entries in one transaction, and the system chain
        await audit.record(conn, tenant_id=tenant_id, actor="a", action="x.one")
        await audit.record(conn, tenant_id=tenant_id, actor="a", action="x.two", target="t:1")
        await audit.record(conn, tenant_id=None, actor="system:cli", action="system.did")
    result = await audit.verify(conn, tenant_id)
    assert result.ok and (result.entries, result.chains) == (7, 1)
    everything = await audit.verify(conn, batch=2)  # streamed two rows at a time
    assert everything.ok, everything.breaks
    assert everything.entries == await conn.fetchval("SELECT count(*) FROM audit_logs")
    assert everything.chains == await conn.fetchval(
        "SELECT count(DISTINCT coalesce(tenant_id::text, '')) FROM audit_logs"
    )
    head = await conn.fetchrow(
        "SELECT last_seq, last_hash FROM audit_chain_heads WHERE tenant_id = $1", tenant_id
    )
    last = await conn.fetchrow(
        "SELECT seq, hash, target FROM audit_logs WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1",
        tenant_id,
    )
    assert (head["last_seq"], head["last_hash"]) == (7, last["hash"])
    assert last["target"] == "t:1"


async def test_payload_is_hashed_as_jsonb_gives_it_back(conn):
    """JSONB turns 1e16 into 10000000000000000 and -0.0 into 0: still verifies."""
    tenant_id = uuid.uuid4()
    payload = {"big": 1e16, "huge": 2.5e300, "neg_zero": -0.0, "small": 1.5e-05, "pi": 3.14159,
               "int": 2**70, "text": "é ✓ \u2028", "nested": [{"b": 1, "a": [None, True]}]}  # fmt: skip
    async with conn.transaction():
        await audit.record(conn, tenant_id=tenant_id, actor="a", action="x", payload=payload)
    assert (await audit.verify(conn, tenant_id)).ok


async def test_entries_without_target_hash_as_before_target_existed(conn):
    """Entries written before the target column hash exactly as they did then, so the chains
    of existing databases keep verifying."""
    tenant_id = uuid.uuid4()
    async with conn.transaction():
        await audit.record(conn, tenant_id=tenant_id, actor="a", action="x", payload={"k": 1})
    row = await conn.fetchrow("SELECT * FROM audit_logs WHERE tenant_id = $1", tenant_id)
    old_entry = {
        "tenant_id": str(tenant_id), "seq": 1, "user_id": "a", "action": "x", "payload": {"k": 1},
        "request_id": None, "created_at": row["created_at"].isoformat(),
    }  # fmt: skip
    old_form = json.dumps(old_entry, sort_keys=True, separators=(",", ":")).encode()
    assert row["hash"] == hashlib.sha256(old_form).digest()


@pytest.mark.parametrize(
    "change",
    [
        "payload = '{\"n\": 999}'::jsonb",
        "target = 'integration:someone-else'",
        "target = NULL",
        "user_id = 'apikey:innocent'",
        "action = 'integration.created'",
        "created_at = created_at - interval '1 day'",
    ],
    ids=["payload", "target", "target-removed", "actor", "action", "time"],
)
async def test_an_edited_middle_entry_is_reported_at_its_seq(conn, change):
    tenant_id = await write_chain(conn, 5)
    await tamper(
        conn, f"UPDATE audit_logs SET {change} WHERE tenant_id = $1 AND seq = 3", tenant_id
    )
    found = await only_break(conn, tenant_id)
    assert found.seq == 3
    assert "hash mismatch" in found.reason


async def test_an_edited_entry_with_a_recomputed_hash_breaks_the_next_link(conn):
    tenant_id = await write_chain(conn, 5)
    row = await conn.fetchrow(
        "SELECT * FROM audit_logs WHERE tenant_id = $1 AND seq = 3", tenant_id
    )
    forged = audit.canonical_entry(
        tenant_id=tenant_id, seq=3, actor=row["user_id"], action=row["action"],
        target=row["target"], payload={"n": 999}, request_id=row["request_id"],
        created_at=row["created_at"],
    )  # fmt: skip
    await tamper(
        conn,
        "UPDATE audit_logs SET payload = '{\"n\": 999}'::jsonb, hash = $2"
        " WHERE tenant_id = $1 AND seq = 3",
        tenant_id,
        audit.entry_hash(row["prev_hash"], forged),
    )
    found = await only_break(conn, tenant_id)
    assert found.seq == 4
    assert found.reason == "prev_hash does not match the hash of entry 3"


@pytest.mark.parametrize("seq", [1, 3])
async def test_a_deleted_entry_is_reported_at_its_seq(conn, seq):
    tenant_id = await write_chain(conn, 5)
    await tamper(conn, "DELETE FROM audit_logs WHERE tenant_id = $1 AND seq = $2", tenant_id, seq)
    found = await only_break(conn, tenant_id)
    assert found.seq == seq
    assert found.reason.startswith(f"entry {seq} is missing")


async def test_removing_the_last_entries_is_reported_where_the_chain_now_ends(conn):
    tenant_id = await write_chain(conn, 5)
    await tamper(conn, "DELETE FROM audit_logs WHERE tenant_id = $1 AND seq >= 4", tenant_id)
    found = await only_break(conn, tenant_id)
    assert found.seq == 4
    assert found.reason.startswith("entries 4..5 are missing: the chain ends at 3")

    await tamper(conn, "DELETE FROM audit_logs WHERE tenant_id = $1", tenant_id)
    found = await only_break(conn, tenant_id)
    assert found.seq == 1
    assert found.reason.startswith("entries 1..5 are missing: the chain ends at 0")


async def test_removing_the_last_entry_is_reported(conn):
    tenant_id = await write_chain(conn, 5)
    await tamper(conn, "DELETE FROM audit_logs WHERE tenant_id = $1 AND seq = 5", tenant_id)
    found = await only_break(conn, tenant_id)
    assert (found.seq, found.reason.split(":")[0]) == (5, "entry 5 is missing")


async def test_a_head_that_disagrees_with_its_chain_is_reported(conn):
    tenant_id = await write_chain(conn, 3)
    await conn.execute(
        "UPDATE audit_chain_heads SET last_hash = '\\x00' WHERE tenant_id = $1", tenant_id
    )
    found = await only_break(conn, tenant_id)
    assert (found.seq, found.reason) == (3, "the head's hash differs from the hash of entry 3")


async def test_entries_appended_around_the_writer_are_reported(conn):
    tenant_id = await write_chain(conn, 3)
    last = await conn.fetchval(
        "SELECT hash FROM audit_logs WHERE tenant_id = $1 AND seq = 3", tenant_id
    )
    await conn.execute(
        "INSERT INTO audit_logs (tenant_id, seq, action, prev_hash, hash) VALUES ($1, 4, 'x', $2,"
        " '\\x01')",
        tenant_id,
        last,
    )
    found = await only_break(conn, tenant_id)
    assert found.seq == 4


async def test_heads_only_move_forward(conn):
    tenant_id = await write_chain(conn, 3)
    with pytest.raises(asyncpg.RaiseError, match="cannot be deleted"):
        await conn.execute("DELETE FROM audit_chain_heads WHERE tenant_id = $1", tenant_id)
    with pytest.raises(asyncpg.RaiseError, match="only moves forward"):
        await conn.execute(
            "UPDATE audit_chain_heads SET last_seq = 1 WHERE tenant_id = $1", tenant_id
        )
    assert (await audit.verify(conn, tenant_id)).ok


async def test_only_the_broken_chain_is_reported(fresh_conn):
    conn = fresh_conn
    intact, broken = await write_chain(conn, 3), await write_chain(conn, 4)
    await tamper(conn, "DELETE FROM audit_logs WHERE tenant_id = $1 AND seq = 2", broken)
    result = await audit.verify(conn)
    assert [(b.tenant_id, b.seq) for b in result.breaks] == [(broken, 2)]
    assert (await audit.verify(conn, intact)).ok


async def test_concurrent_writers_get_a_gapless_chain(audit_dsn):
    """Twenty transactions at once, on their own connections, on a chain that does not exist
    yet: each gets its own seq and the chain verifies."""
    tenant_id = uuid.uuid4()
    conns = [await db.connect(audit_dsn) for _ in range(20)]
    try:
        start = asyncio.Event()

        async def write(c: asyncpg.Connection, i: int) -> int:
            await start.wait()
            async with c.transaction():
                return await audit.record(
                    c, tenant_id=tenant_id, actor=f"w{i}", action="x", payload={"i": i}
                )

        tasks = [asyncio.create_task(write(c, i)) for i, c in enumerate(conns)]
        start.set()
        seqs = await asyncio.gather(*tasks)
        assert sorted(seqs) == list(range(1, 21))
        result = await audit.verify(conns[0], tenant_id)
        assert result.ok and result.entries == 20, result.breaks
    finally:
        for c in conns:
            await c.close()


async def test_a_database_from_before_the_chain_heads_verifies_after_migrating(
    admin_dsn, tmp_path: Path
):
    """Entries written by the previous writer (no target, no head) verify once the migration
    has backfilled the heads, and the next entry continues the chain."""
    earlier = tmp_path / "migrations"
    earlier.mkdir()
    for m in migrate.discover(migrate.default_directory()):
        if m.version < "20261126090700":
            shutil.copy(m.path, earlier / m.path.name)
    url = await create_database(admin_dsn, "seedos_audit_old")
    conn = await db.connect(url)
    try:
        await migrate.apply(conn, earlier)
        tenant_id = uuid.uuid4()
        prev = None
        for seq in (1, 2):  # what the previous writer stored
            row = await conn.fetchrow(
                "INSERT INTO audit_logs (tenant_id, seq, user_id, action, payload, hash)"
                " VALUES ($1, $2, 'a', 'x', '{}', '\\x00') RETURNING created_at",
                tenant_id,
                seq,
            )
            entry = audit.canonical_entry(
                tenant_id=tenant_id, seq=seq, actor="a", action="x", target=None, payload={},
                request_id=None, created_at=row["created_at"],
            )  # fmt: skip
            digest = audit.entry_hash(prev, entry)
            await tamper(
                conn,
                "UPDATE audit_logs SET prev_hash = $3, hash = $4 WHERE tenant_id = $1 AND seq = $2",
                tenant_id, seq, prev, digest,
            )  # fmt: skip
            prev = digest
        await migrate.apply(conn)
        assert (await audit.verify(conn, tenant_id)).ok
        async with conn.transaction():
            assert await audit.record(conn, tenant_id=tenant_id, actor="b", action="y") == 3
        result = await audit.verify(conn)
        assert result.ok and result.entries == 3, result.breaks
    finally:
        await conn.close()
        await drop_database(admin_dsn, url)
