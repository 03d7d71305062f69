"""``seedos audit verify`` as an operator runs it, on a database of its own (it is tampered with)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from common import db
from gateway.api_keys import service as api_keys
from gateway.tenants import service as tenants
from tests.seedos_cli.test_cli import seedos
from tests.support import migrated_database


@pytest.fixture
async def audit_db(admin_dsn: str) -> AsyncIterator[str]:
    async with migrated_database(admin_dsn, "seedos_audit_cli") as url:
        yield url


async def tenant_with_entries(dsn: str, slug: str, keys: int) -> None:
    """A tenant whose chain has 1 + ``keys`` entries (tenant.created, api_key.created ...)."""
    conn = await db.connect(dsn)
    try:
        async with conn.transaction():
            t = await tenants.create(conn, slug=slug, name=slug)
            for i in range(keys):
                await api_keys.create(conn, tenant_id=t["id"], name=f"k{i}", created_by="test")
    finally:
        await conn.close()


async def tamper(dsn: str, slug: str, condition: str) -> None:
    conn = await db.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_no_update")
            await conn.execute(
                "DELETE FROM audit_logs WHERE tenant_id = (SELECT id FROM tenants WHERE slug = $1)"
                f" AND {condition}",
                slug,
            )
            await conn.execute("ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_no_update")
    finally:
        await conn.close()


async def run(*args: str, dsn: str):
    return await asyncio.to_thread(seedos, *args, dsn=dsn, check=False)


def test_help(dsn):
    assert "verify" in seedos("audit", "--help", dsn=dsn).stdout
    assert "--tenant" in seedos("audit", "verify", "--help", dsn=dsn).stdout


async def test_verify_reports_each_broken_chain_and_exits_1(audit_db):
    await tenant_with_entries(audit_db, "acme", keys=4)  # seq 1..5
    await tenant_with_entries(audit_db, "globex", keys=2)  # seq 1..3

    out = await run("audit", "verify", dsn=audit_db)
    assert (out.returncode, out.stdout.strip()) == (0, "ok: 8 entries in 2 chains"), out.stderr
    out = await run("audit", "verify", "--tenant", "globex", dsn=audit_db)
    assert (out.returncode, out.stdout.strip()) == (0, "ok: 3 entries in 1 chains"), out.stderr

    await tamper(audit_db, "acme", "seq >= 4")  # the last two entries
    out = await run("audit", "verify", dsn=audit_db)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.splitlines() == [
        "tenant acme: seq 4: entries 4..5 are missing: the chain ends at 3 but its head records 5"
        " (entries removed from the end)"
    ]
    assert "broken: 1 of 2 chains (6 entries)" in out.stderr

    await tamper(audit_db, "globex", "seq = 2")
    out = await run("audit", "verify", dsn=audit_db)
    assert out.returncode == 1
    lines = sorted(out.stdout.splitlines())
    assert len(lines) == 2 and lines[0].startswith("tenant acme: seq 4: ")
    assert lines[1] == "tenant globex: seq 2: entry 2 is missing (the chain goes from 1 to 3)"
    out = await run("audit", "verify", "--tenant", "globex", dsn=audit_db)
    assert out.returncode == 1
    assert out.stdout.startswith("tenant globex: seq 2: ") and "acme" not in out.stdout


async def test_unknown_tenant_exits_2(audit_db):
    out = await run("audit", "verify", "--tenant", "nobody", dsn=audit_db)
    assert out.returncode == 2
    assert "no tenant with slug 'nobody'" in out.stderr
