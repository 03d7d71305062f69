"""A small in-memory connector the SDK's own tests serve as a real process."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from seedos_sdk import (
    ApiKeyAuth,
    Connector,
    Context,
    Page,
    PermanentError,
    RetryableError,
    WriteResult,
    secret_string,
)

RECORDS = [{"id": f"r{i:03d}", "name": f"record {i}", "n": i} for i in range(25)]
CALLS = {"charge": 0}

connector = Connector(
    name="sample",
    version="0.3.0",
    auth=ApiKeyAuth(),
    config_schema={
        "type": "object",
        "properties": {
            "region": {"type": "string", "enum": ["eu", "us"]},
            "api_key": secret_string(),
        },
        "required": ["region"],
    },
)
ITEM = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "n": {"type": "integer"}},
    "required": ["id", "name"],
}


@connector.stream("items", primary_key="id", cursor_field="n", schema=ITEM)
async def items(ctx: Context, cursor: str | None) -> AsyncIterator[Page]:
    start = int(cursor or 0)
    while True:
        chunk = RECORDS[start : start + 10]
        start += len(chunk)
        yield Page(records=chunk, next_cursor=str(start), has_more=start < len(RECORDS))
        if start >= len(RECORDS):
            return


@connector.stream("broken", primary_key="id", schema=ITEM)
async def broken(ctx: Context, cursor: str | None) -> AsyncIterator[Page]:
    mode = ctx.config.get("region")
    if mode == "us":
        raise RetryableError("upstream busy", retry_after=3)
    yield Page(records=[{"id": "x", "name": 5}])  # breaks its own schema


@connector.stream("flaky", primary_key="id", schema=ITEM)
async def flaky(ctx: Context, cursor: str | None) -> AsyncIterator[Page]:
    raise PermanentError("the external system refused this account", code="account_suspended")
    yield Page()  # pragma: no cover


@items.writer
async def write_items(ctx: Context, upserts: list[dict], deletes: list[str]) -> list[WriteResult]:
    return [WriteResult(r["id"], True) for r in upserts] + [WriteResult(k, True) for k in deletes]


@connector.action(
    "charge",
    input_schema={
        "type": "object",
        "properties": {"amount": {"type": "integer", "minimum": 1}},
        "required": ["amount"],
        "additionalProperties": False,
    },
    output_schema={"type": "object", "properties": {"receipt": {"type": "integer"}}},
)
async def charge(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    CALLS["charge"] += 1
    return {"receipt": CALLS["charge"], "amount": data["amount"]}


app = connector.app(debug=os.environ.get("SAMPLE_DEBUG") == "1")
