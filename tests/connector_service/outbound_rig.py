"""What the outbound tests share: a webhook receiver on loopback that records what it gets and
answers as told (or is down), an SMTP server (aiosmtpd) on loopback, and the suite started with
loopback allowed for egress, a short retry schedule and a short disabling time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller

from tests.support import free_port

# delays between attempts (s): ~6 s of retrying, so an endpoint failing 3 s gets disabled
SCHEDULE = [0.3, 0.3, 0.5, 0.5, 0.5, 1, 1, 1, 1]
DISABLE_AFTER_SECONDS = 3.0


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: ``status`` answers, ``up`` False refuses connections."""

    port: int
    status: int = 200
    got: list[Received] = field(default_factory=list)
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        self.got.append(Received({k.lower(): v for k, v in request.headers.items()},
                                 await request.read()))  # fmt: skip
        return web.Response(status=self.status, text="thanks " * 400)  # > 1 KiB of answer

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def wait_for(self, check: Callable[[list[Received]], Any], within: float = 15) -> Any:
        deadline = time.monotonic() + within
        while not (found := check(self.got)):
            assert time.monotonic() < deadline, f"not received in {within} s: {self.got!r}"
            await asyncio.sleep(0.05)
        return found


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(free_port())
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


class Mailbox:
    """What aiosmtpd received, as parsed messages."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


@dataclass
class Smtp:
    port: int
    box: Mailbox
    controller: Controller


def start_smtp() -> Smtp:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    return Smtp(port, box, controller)


def outbound_env(smtp_port: int) -> dict[str, str]:
    return {
        # the receivers listen on loopback: listed for egress, as an operator would list a
        # network (production mode otherwise allows public addresses only)
        "SEEDOS_EGRESS_ALLOWED_NETWORKS": "127.0.0.0/8",
        "SEEDOS_CONNECTOR_OUTBOUND_DELIVER": "true",  # off in other suites (tests/conftest.py)
        "SEEDOS_CONNECTOR_WEBHOOK_RETRY_SCHEDULE_SECONDS": json.dumps(SCHEDULE),
        "SEEDOS_CONNECTOR_WEBHOOK_DISABLE_AFTER_DAYS": str(DISABLE_AFTER_SECONDS / 86400),
        "SEEDOS_CONNECTOR_WEBHOOK_TIMEOUT_SECONDS": "2",
        "SEEDOS_CONNECTOR_OUTBOUND_POLL_SECONDS": "0.1",
        "SEEDOS_CONNECTOR_SMTP_HOST": "127.0.0.1",
        "SEEDOS_CONNECTOR_SMTP_PORT": str(smtp_port),
        "SEEDOS_CONNECTOR_SMTP_STARTTLS": "false",
        "SEEDOS_CONNECTOR_SMTP_TIMEOUT_SECONDS": "2",
    }


@asynccontextmanager
async def production_deliveries(database: Any) -> AsyncIterator[None]:
    """A delivery loop in this process under production's egress rule (public addresses only):
    the suites leave delivering off (tests/conftest.py), so a test of what that rule refuses at
    send time runs this one for its duration."""
    from common.credential_keys import KeyRing
    from common.endpoints import DEFAULT_EGRESS
    from connector_service.outbound import worker
    from connector_service.settings import ConnectorServiceSettings
    from tests.conftest import TEST_KEY_RING

    settings = ConnectorServiceSettings(
        outbound_poll_seconds=0.1, webhook_timeout_seconds=2, egress_allowed_networks=DEFAULT_EGRESS
    )
    deliverer = worker.Deliverer(database, KeyRing.from_json(TEST_KEY_RING),
                                 policy=settings.egress_policy(), settings=settings)  # fmt: skip
    task = asyncio.create_task(deliverer.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await deliverer.aclose()
