"""The pooled-connection gate: first come, first served, and a bounded wait."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from common import db
from common.errors import ServiceUnavailable


async def test_waiters_are_served_in_arrival_order_and_time_out_with_503(dsn):
    pool = await asyncpg.create_pool(dsn, min_size=0, max_size=2)
    database = db.Database(pool, acquire_timeout=0.3)
    try:
        held = [await database.acquire(), await database.acquire()]
        order: list[int] = []

        async def waiter(i: int) -> None:
            async with database.connection() as conn:
                order.append(i)
                await conn.fetchval("SELECT 1")

        database.acquire_timeout = 5
        tasks = []
        for i in range(6):
            tasks.append(asyncio.create_task(waiter(i)))
            await _until(lambda n=i + 1: _waiting(database) == n)  # arrived, in this order
        for conn in held:
            await database.release(conn)
        await asyncio.gather(*tasks)
        assert order == list(range(6))

        database.acquire_timeout = 0.3
        held = [await database.acquire(), await database.acquire()]
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(ServiceUnavailable) as info:
            await database.acquire()
        assert info.value.code == "database_busy" and info.value.status == 503
        assert 0.25 <= loop.time() - start < 1.0
        for conn in held:
            await database.release(conn)
        # nothing leaked: both connections can be taken again at once
        again = [await database.acquire(), await database.acquire()]
        for conn in again:
            await database.release(conn)
    finally:
        await pool.close()


async def test_database_down_is_503_unavailable():
    pool = await asyncpg.create_pool(
        "postgresql://postgres@127.0.0.1:1/postgres", min_size=0, max_size=1
    )
    database = db.Database(pool, acquire_timeout=1)
    try:
        with pytest.raises(ServiceUnavailable) as info:
            await database.acquire()
        assert info.value.code == "database_unavailable"
        with pytest.raises(ServiceUnavailable):  # the gate was given back
            await database.acquire()
    finally:
        await pool.close()


def _waiting(database: db.Database) -> int:
    return len(database._gate._waiters or ())


async def _until(condition, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0)


async def test_a_spare_connection_only_when_one_is_free_now(dsn):
    pool = await asyncpg.create_pool(dsn, min_size=0, max_size=2)
    database = db.Database(pool, acquire_timeout=5)
    try:
        async with database.connection() as conn, database.spare() as spare:
            assert spare is not None and spare is not conn
            assert await spare.fetchval("SELECT 1") == 1
            async with database.spare() as none:  # both taken: no waiting, no connection
                assert none is None
        # a request in line keeps its turn: no spare while anyone waits
        held = [await database.acquire(), await database.acquire()]
        waiting = asyncio.create_task(database.acquire())
        await _until(lambda: _waiting(database) == 1)
        await database.release(held.pop())
        async with database.spare() as none:
            assert none is None
        await database.release(await waiting)
        await database.release(held.pop())
        # everything was given back: two at once again
        again = [await database.acquire(), await database.acquire()]
        for conn in again:
            await database.release(conn)
    finally:
        await pool.close()
