"""The asyncpg pool, opened and closed in each service's lifespan; the transaction dependency."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from common.errors import ServiceUnavailable
from common.settings import CommonSettings

# Failures that mean "the database is not reachable right now" rather than a bug.
UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
)


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Pool reset hook. asyncpg still rolls back an open transaction on release; what this skips
    is the default RESET ALL / UNLISTEN / advisory-unlock round trip on every release. Pooled
    connections therefore must not change session state (SET, LISTEN, session-level advisory
    locks): use a dedicated connection for those."""


async def open_pool(settings: CommonSettings, *, application_name: str) -> asyncpg.Pool:
    """Open a pool without failing when the database is down: the service starts, reports
    not-ready on /readyz and answers 503 until the database is back."""
    if not settings.dsn:
        raise RuntimeError("DATABASE_URL is not set (seedos up sets it for the embedded server)")
    pool = await asyncpg.create_pool(
        settings.dsn,
        min_size=0,
        max_size=settings.db_pool_max_size,
        timeout=settings.db_connect_timeout_seconds,
        command_timeout=settings.db_command_timeout_seconds,
        init=_init_connection,
        reset=_keep_session,
        server_settings={"application_name": application_name},
    )
    try:  # warm up so the first requests do not pay for connecting
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
    except UNAVAILABLE:
        pass
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn


class Database:
    """The pool behind a fair gate, with a bounded wait.

    asyncpg's pool hands a released connection to whichever coroutine asks next, so under load a
    waiting request can lose its turn again and again (measured: p99 of 3.2 s at 50 clients,
    p50 17 ms). A FIFO semaphore sized to the pool serves requests in arrival order, and a
    request that cannot get a connection in time gets a 503 instead of hanging."""

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout: float) -> None:
        self.pool = pool
        self.acquire_timeout = acquire_timeout
        self._gate = asyncio.Semaphore(pool.get_max_size())

    async def acquire(self) -> asyncpg.Connection:
        try:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # lands as the gate is granted, and a task being cancelled would go on
            async with asyncio.timeout(self.acquire_timeout):
                await self._gate.acquire()
        except TimeoutError:
            raise ServiceUnavailable(
                "the database is busy; retry shortly",
                code="database_busy",
                headers={"Retry-After": "1"},
            ) from None
        try:
            return await self.pool.acquire()
        except UNAVAILABLE as exc:
            self._gate.release()
            raise ServiceUnavailable(
                "the database is unavailable", code="database_unavailable"
            ) from exc
        except BaseException:
            self._gate.release()
            raise

    async def release(self, conn: asyncpg.Connection) -> None:
        try:
            await self.pool.release(conn)
        finally:
            self._gate.release()

    @asynccontextmanager
    async def spare(self) -> AsyncIterator[asyncpg.Connection | None]:
        """A second connection for a request with independent reads to run at once, only if
        the gate has room right now (it never waits, and never takes a place from a request
        in line): ``None`` when busy or unreachable, and the request reads one statement
        after another on its own connection instead."""
        if self._gate.locked():
            yield None
            return
        await self._gate.acquire()  # immediate: not locked
        try:
            conn = await self.pool.acquire(timeout=self.acquire_timeout)
        except UNAVAILABLE:
            conn = None
        try:
            yield conn
        finally:
            try:
                if conn is not None:
                    await self.pool.release(conn)
            finally:
                self._gate.release()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        conn = await self.acquire()
        try:
            yield conn
        finally:
            await self.release(conn)


async def get_db(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """A connection in a transaction: committed when the route succeeds, rolled back otherwise."""
    async with request.app.state.db.connection() as conn, conn.transaction():
        yield conn


async def get_read_db(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """A connection for routes that only read with single statements: no BEGIN/COMMIT round
    trips (each statement is its own snapshot)."""
    async with request.app.state.db.connection() as conn:
        yield conn


async def get_database(request: Request) -> Database:
    """The pool itself, for a route that takes a connection only at a point of its choosing
    (not across a call to another service) or owns several transactions."""
    return request.app.state.db


# scope="function": the transaction commits (and the connection returns to the pool) before the
# response is sent, so a client that got 201 can rely on the write, and a failed commit is an
# error response rather than a 2xx followed by a rollback.
Db = Annotated[asyncpg.Connection, Depends(get_db, scope="function")]
ReadDb = Annotated[asyncpg.Connection, Depends(get_read_db, scope="function")]
Pool = Annotated[Database, Depends(get_database)]


async def ping(pool: asyncpg.Pool, wait: float = 2.0) -> tuple[bool, str | None]:
    try:
        async with pool.acquire(timeout=wait) as conn:
            await conn.fetchval("SELECT 1", timeout=wait)
        return True, None
    except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
        return False, type(exc).__name__
