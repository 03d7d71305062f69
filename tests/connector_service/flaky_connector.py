"""A connector built with seedos-sdk whose failures the tests choose: the ConnectorManager's
retries, timeouts and circuit breaker are tested against it as a real process.

Action ``count`` input: ``tag`` (counts calls per tag), ``fail_times`` (the first N calls of
that tag fail with a retryable error), ``sleep`` (seconds before answering), ``refuse`` (a
permanent error). It answers ``{"calls": n}``. ``GET /calls`` shows every tag's count.
``FLAKY_NAME`` names the connector (each catalog entry needs its own name).
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from seedos_sdk import Connector, Context, NoAuth, PermanentError, RetryableError

CALLS: Counter[str] = Counter()

connector = Connector(
    name=os.environ.get("FLAKY_NAME", "flaky"),
    version="1.0.0",
    display_name=os.environ.get("FLAKY_NAME", "flaky").title(),
    description="Fails when told to.",
    auth=NoAuth(),
    config_schema={"type": "object", "properties": {}, "additionalProperties": False},
)


@connector.check
async def check(_ctx: Context) -> None:
    CALLS["check"] += 1


@connector.action(
    "count",
    input_schema={
        "type": "object",
        "properties": {
            "tag": {"type": "string"},
            "fail_times": {"type": "integer"},
            "sleep": {"type": "number"},
            "refuse": {"type": "boolean"},
        },
        "required": ["tag"],
        "additionalProperties": False,
    },
    output_schema={"type": "object", "properties": {"calls": {"type": "integer"}}},
)
async def count(_ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    tag = data["tag"]
    CALLS[tag] += 1
    if data.get("sleep"):
        await asyncio.sleep(data["sleep"])
    if data.get("refuse"):
        raise PermanentError("refused as asked", code="refused")
    if CALLS[tag] <= data.get("fail_times", 0):
        raise RetryableError(f"failing as asked ({CALLS[tag]})")
    return {"calls": CALLS[tag]}


async def calls(_request: Request) -> JSONResponse:
    return JSONResponse(dict(CALLS))


app = connector.app()
app.router.routes.append(Route("/calls", calls))
