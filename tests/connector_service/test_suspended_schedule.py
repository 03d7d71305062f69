"""A suspended tenant's scheduled syncs pause, and its outbox waits; resuming picks them up.

Real processes (rig.py): the scheduler and the outbox writer of a running connector_service."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from common.roles import Role
from connector_service.sync import repository as sync
from gateway.admin import service as admin
from tests.connector_service.rig import fetch, install_crm, register, wait_status
from tests.support import TenantKey, make_tenant

INTERVAL = 10  # seconds, the shortest schedule there is


@dataclass
class Install:
    tenant: TenantKey
    id: uuid.UUID
    client: httpx.AsyncClient


@pytest.fixture
async def installs(rig, dsn) -> AsyncIterator[list[Install]]:
    """Two tenants with an install of the CRM connector each, synced every 10 s."""
    slug = await register(dsn, rig.crm_connector.url)
    made = []
    for _ in range(2):
        tenant = await make_tenant(dsn, role=Role.editor)
        client = httpx.AsyncClient(base_url=rig.suite.gateway, headers=tenant.headers, timeout=30)
        iid = await install_crm(client, rig, slug)
        r = await client.patch(
            f"/api/v1/integrations/{iid}", json={"sync_interval_seconds": INTERVAL}
        )
        assert r.status_code == 200, r.text
        assert (await wait_status(client, iid, "active"))["status"] == "active"
        made.append(Install(tenant, uuid.UUID(iid), client))
    try:
        yield made
    finally:
        # whatever happened, neither goes on syncing against the other tests' CRM
        await fetch(dsn, "UPDATE integration_connectors SET sync_interval_seconds = 0"
                    " WHERE id = ANY($1)", [i.id for i in made])  # fmt: skip
        for install in made:
            await install.client.aclose()


async def _runs(conn: asyncpg.Connection, install: Install) -> list[datetime]:
    """When each scheduled run of the install began."""
    rows = await conn.fetch(
        "SELECT started_at FROM sync_runs WHERE integration_id = $1 AND kind = 'scheduled'",
        install.id,
    )
    return sorted(r["started_at"] for r in rows)


async def _run_after(conn: asyncpg.Connection, install: Install, moment: datetime) -> datetime:
    """Wait for a scheduled run of the install that began after ``moment``."""
    deadline = time.monotonic() + 60
    while True:
        later = [t for t in await _runs(conn, install) if t > moment]
        if later:
            return later[0]
        assert time.monotonic() < deadline, f"no scheduled run after {moment}"
        await asyncio.sleep(0.2)


async def _now(conn: asyncpg.Connection) -> datetime:
    return await conn.fetchval("SELECT clock_timestamp()")


async def test_scheduled_runs_pause_while_suspended_and_resume(installs, conn):
    paused, control = installs
    # the schedule runs both (the first run of an install is due at once)
    await _run_after(conn, paused, datetime.fromtimestamp(0, UTC))
    async with conn.transaction():
        await admin.suspend(conn, paused.tenant.slug, reason="test", actor="test")
    suspended_at = await _now(conn)
    last = (await _runs(conn, paused))[-1]  # a run begun before the suspension may still go on

    # The paused install is due again INTERVAL seconds after its last run began. A scheduler
    # pass after that runs the control install (due as often) and passes the paused one over.
    due_again = max(last + timedelta(seconds=INTERVAL), suspended_at)
    seen = await _run_after(conn, control, due_again + timedelta(seconds=1))
    seen = await _run_after(conn, control, seen)  # and one more pass, to be sure
    assert [t for t in await _runs(conn, paused) if t > last] == []
    state = await conn.fetchrow(
        "SELECT status, now() - $2::timestamptz AS idle FROM integration_connectors WHERE id = $1",
        paused.id, last,
    )  # fmt: skip
    assert state["status"] == "active" and state["idle"] > timedelta(seconds=INTERVAL)

    async with conn.transaction():
        await admin.resume(conn, paused.tenant.slug, actor="test")
    resumed_at = await _now(conn)
    await _run_after(conn, paused, resumed_at)  # overdue: the next pass runs it


async def test_due_work_of_suspended_tenants_is_not_picked(installs, conn):
    """What the scheduler and the outbox writer pick, read in a transaction rolled back (so
    the running service never sees these rows)."""
    paused, _control = installs
    tx = conn.transaction()
    await tx.start()
    try:
        # due now whatever ran before, with an outbox row waiting to be written; the running
        # scheduler starts no run meanwhile (its insert waits for this rollback), or the
        # install it just ran would not be due (seen once in CI)
        await conn.execute("LOCK TABLE sync_runs IN EXCLUSIVE MODE")
        await conn.execute("DELETE FROM sync_runs WHERE integration_id = $1", paused.id)
        await conn.execute(
            "INSERT INTO sync_outbox (integration_id, stream, record_key) VALUES ($1, 'contacts',"
            " 'r-1') ON CONFLICT DO NOTHING",
            paused.id,
        )
        assert paused.id in await _picked(conn)
        assert paused.id in await sync.integrations_due(conn, limit=100_000)

        await admin.suspend(conn, paused.tenant.slug, reason="test", actor="test")
        assert paused.id not in await _picked(conn)
        assert paused.id not in await sync.integrations_due(conn, limit=100_000)

        await admin.resume(conn, paused.tenant.slug, actor="test")
        assert paused.id in await _picked(conn)
        assert paused.id in await sync.integrations_due(conn, limit=100_000)
    finally:
        await tx.rollback()


async def _picked(conn: asyncpg.Connection) -> set[uuid.UUID]:
    return {r["id"] for r in await sync.scheduled_due(conn, limit=100_000)}
