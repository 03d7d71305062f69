"""An email send has one deadline for all of it: smtplib's timeout bounds each socket
operation only, so a server answering a line at a time, each well within it, would otherwise
hold a send (and its thread) past the delivery's lease."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from connector_service.outbound import email
from tests.support import free_port


async def test_a_dripping_smtp_server_cannot_hold_a_send_past_its_deadline():
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # a greeting that never ends, a line every 0.2 s
                writer.write(b"220-still greeting\r\n")
                await writer.drain()
                await asyncio.sleep(0.2)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    port = free_port()
    server = await asyncio.start_server(drip, "127.0.0.1", port)
    mailer = email.Mailer(host="127.0.0.1", port=port, sender="seedos@example.test",
                          starttls=False, user=None, password=None, timeout=1.0)  # fmt: skip
    event = {"type": "alert.opened", "event_id": uuid.uuid4(), "data": {"metric": "p95"}}
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(mailer.send("admin@example.test", event, "T"), 10)
        assert time.monotonic() - started < 2
        # the thread is not left blocked: the pool has room again at once
        done = await asyncio.wait_for(
            asyncio.wrap_future(mailer._pool.submit(lambda: "free")), 2)  # fmt: skip
        assert done == "free"
    finally:
        mailer.close()
        server.close()
        await server.wait_closed()
