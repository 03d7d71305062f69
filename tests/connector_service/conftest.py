from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.connector_service.rig import Rig, register, start_rig, stop_rig
from tests.support import free_port


@pytest.fixture(scope="package")
def rig(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """The suite, the demo CRM and the example connector, shared by this folder's tests."""
    running = start_rig(dsn, tmp_path_factory.mktemp("rig"))
    try:
        yield running
    finally:
        stop_rig(running)


@pytest.fixture(scope="module")
async def crm_slug(rig: Rig, dsn: str) -> str:
    """The rig's demo CRM connector in the catalog under a slug of the module's own: one entry
    per module, since other tests search the catalog the whole session shares."""
    return await register(dsn, rig.crm_connector.url)


@pytest.fixture
async def listener():
    """A TCP server on loopback counting the connections it accepts (the egress tests: nothing
    may connect to it)."""
    accepted: list[int] = []

    async def on_connect(reader, writer):
        accepted.append(1)
        writer.close()

    port = free_port()
    server = await asyncio.start_server(on_connect, "127.0.0.1", port)
    try:
        yield port, accepted
    finally:
        server.close()
        await server.wait_closed()
