"""Test helpers shared by the suites: databases, free ports, the running services."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from common import db, embedded, migrate
from common.roles import Role
from gateway.api_keys import service as api_keys
from gateway.tenants import service as tenants


@contextmanager
def embedded_cluster(prefix: str) -> Iterator[str]:
    """A throwaway embedded PostgreSQL, deleted afterwards; yields its admin DSN."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    server = embedded.start(folder, cleanup_mode="delete")
    try:
        yield embedded.dsn(server)
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def with_database(dsn: str, name: str) -> str:
    """The same server, another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


async def create_database(admin_dsn: str, prefix: str = "seedos_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_dsn, name)


async def drop_database(admin_dsn: str, dsn: str) -> None:
    name = urlsplit(dsn).path.lstrip("/")
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@asynccontextmanager
async def connected(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """One connection (as the services open theirs) for as long as the block lasts."""
    conn = await db.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def migrated_database(admin_dsn: str, prefix: str) -> AsyncIterator[str]:
    """A fresh database with every migration (no demo data), dropped afterwards."""
    url = await create_database(admin_dsn, prefix)
    async with connected(url) as conn:
        await migrate.apply(conn)
    try:
        yield url
    finally:
        await drop_database(admin_dsn, url)


async def until_blocked(watcher: asyncpg.Connection, pid: int, *, failure: str) -> None:
    """Wait (10 s at most, else fail with ``failure``) until the server process ``pid``
    waits for a lock another holds, as ``watcher`` sees it."""
    deadline = time.monotonic() + 10
    while not await watcher.fetchval("SELECT cardinality(pg_blocking_pids($1)) > 0", pid):
        assert time.monotonic() < deadline, failure
        await asyncio.sleep(0.02)


def set_cookies(response: httpx.Response, name: str) -> list[str]:
    """The values of every cookie ``name`` that ``response`` sets, in order."""
    return [
        rest.split(";", 1)[0]
        for key, _, rest in (h.partition("=") for h in response.headers.get_list("set-cookie"))
        if key == name
    ]


def set_cookie(response: httpx.Response, name: str) -> str:
    """The value of the cookie ``name`` that ``response`` sets (the first, if several)."""
    if found := set_cookies(response, name):
        return found[0]
    raise AssertionError(f"no {name} cookie in {response.headers}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class TenantKey:
    tenant_id: uuid.UUID
    slug: str
    key: str
    key_id: uuid.UUID

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_tenant(dsn: str, *, role: Role = Role.admin, **profile: Any) -> TenantKey:
    """A new tenant of its own (tests never share one) with one API key."""
    slug = f"t-{secrets.token_hex(5)}"
    async with connected(dsn) as conn, conn.transaction():
        tenant = await tenants.create(conn, slug=slug, name=f"Tenant {slug}", **profile)
        key = await api_keys.create(
            conn, tenant_id=tenant["id"], name="test", role=role, created_by="test"
        )
    return TenantKey(tenant_id=tenant["id"], slug=slug, key=key["key"], key_id=key["id"])


async def add_key(dsn: str, tenant: TenantKey, role: Role) -> TenantKey:
    async with connected(dsn) as conn, conn.transaction():
        key = await api_keys.create(
            conn, tenant_id=tenant.tenant_id, name=role.value, role=role, created_by="test"
        )
    return TenantKey(tenant.tenant_id, tenant.slug, key["key"], key["id"])


def metric_total(exposition: str, sample: str, **labels: str) -> float:
    """The sum of the ``sample`` values (e.g. ``seedos_http_requests_total``) whose labels
    include ``labels``, in a /metrics text; 0 when there is none. Malformed text raises."""
    return sum(
        found.value
        for family in text_string_to_metric_families(exposition)
        for found in family.samples
        if found.name == sample and labels.items() <= found.labels.items()
    )
