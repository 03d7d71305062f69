"""The example CRM connector, built with seedos-sdk against the demo CRM's API.

Streams ``contacts`` and ``companies`` are read incrementally by ``updated_after`` (the demo CRM
moves ``updated_at`` forward on every change, deletions included, so the last ``updated_at``
seen is a complete cursor); tombstones come back as ``deleted``. Writes upsert with PUT and
delete with DELETE. Its auth scheme is set by configuration: ``CRM_CONNECTOR_AUTH=api_key``
(default; an ``api_key`` credential sent as ``X-API-Key``) or ``oauth2`` (the platform's
access token sent as a bearer token, which the demo CRM checks by token introspection).

Run: ``cd sdk && uvicorn examples.crm_connector.connector:app --port 8010``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from seedos_sdk import (
    ApiKeyAuth,
    Connector,
    Context,
    HttpClient,
    OAuth2Auth,
    Page,
    PermanentError,
    RetryableError,
    WriteResult,
    secret_string,
)

EPOCH = "1970-01-01T00:00:00+00:00"
WRITE_CONCURRENCY = 8


def _auth() -> ApiKeyAuth | OAuth2Auth:
    scheme = os.environ.get("CRM_CONNECTOR_AUTH", "api_key")
    if scheme == "oauth2":
        issuer = os.environ.get("CRM_CONNECTOR_OAUTH_ISSUER", "http://127.0.0.1:8012").rstrip("/")
        return OAuth2Auth(
            authorize_url=f"{issuer}/auth",
            token_url=f"{issuer}/token",
            revoke_url=f"{issuer}/token/revocation",
            scopes=("crm.read", "crm.write", "offline_access"),
        )
    if scheme != "api_key":
        raise ValueError(f"CRM_CONNECTOR_AUTH={scheme!r}: use api_key or oauth2")
    return ApiKeyAuth()


AUTH = _auth()
CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "base_url": {
            "type": "string",
            "format": "uri",
            "title": "Demo CRM URL",
            "description": "Where the demo CRM's API listens.",
            "default": "http://127.0.0.1:8011",
        },
        "page_size": {
            "type": "integer",
            "minimum": 1,
            "maximum": 1000,
            "default": 1000,
            "title": "Page size",
            "description": "Records fetched per request.",
        },
    },
    "required": ["base_url"],
    "additionalProperties": False,
}
if isinstance(AUTH, ApiKeyAuth):
    CONFIG_SCHEMA["properties"]["api_key"] = secret_string("API key", "The demo CRM's API key.")

_TIMESTAMPS = {"type": "string"}
CONTACT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "email": {"type": "string"},
        "first_name": {"type": ["string", "null"]},
        "last_name": {"type": ["string", "null"]},
        "phone": {"type": ["string", "null"]},
        "company_id": {"type": ["string", "null"]},
        "created_at": _TIMESTAMPS,
        "updated_at": _TIMESTAMPS,
    },
    "required": ["id", "email"],
}
COMPANY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "domain": {"type": ["string", "null"]},
        "industry": {"type": ["string", "null"]},
        "created_at": _TIMESTAMPS,
        "updated_at": _TIMESTAMPS,
    },
    "required": ["id", "name"],
}
_READ_ONLY = ("created_at", "updated_at")

connector = Connector(
    name="demo-crm",
    version="1.0.0",
    display_name="Demo CRM",
    description="Contacts and companies of the demo CRM, synced both ways.",
    auth=AUTH,
    config_schema=CONFIG_SCHEMA,
)


@connector.http_client
def http_client(ctx: Context) -> HttpClient:
    if isinstance(AUTH, OAuth2Auth):
        headers = {"Authorization": f"Bearer {ctx.credentials.get('access_token', '')}"}
    else:
        headers = {"X-API-Key": str(ctx.credentials.get("api_key", ""))}
    return HttpClient(base_url=ctx.config["base_url"], headers=headers, connector=connector.name)


async def _read(ctx: Context, resource: str, cursor: str | None) -> AsyncIterator[Page]:
    watermark = cursor or EPOCH
    limit = int(ctx.config.get("page_size", 1000))
    while True:
        body = await ctx.http.get_json(
            f"/v1/{resource}",
            params={"updated_after": watermark, "include_deleted": "true", "limit": limit},
        )
        results = body["results"]
        records = [_clean(r) for r in results if not r.get("deleted")]
        deleted = [r["id"] for r in results if r.get("deleted")]
        if results:
            watermark = results[-1]["updated_at"]
        more = body.get("next_cursor") is not None
        yield Page(records=records, deleted=deleted, next_cursor=watermark, has_more=more)
        if not more:
            return


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    """The record without the CRM's tombstone fields (in place: pages hold 1,000 of them)."""
    record.pop("deleted", None)
    record.pop("deleted_at", None)
    return record


async def _write(
    ctx: Context, resource: str, upserts: list[dict[str, Any]], deletes: list[str]
) -> list[WriteResult]:
    gate = asyncio.Semaphore(WRITE_CONCURRENCY)

    async def upsert(record: dict[str, Any]) -> WriteResult:
        body = {k: v for k, v in record.items() if k not in _READ_ONLY}
        async with gate:
            try:
                r = await ctx.http.put(f"/v1/{resource}/{quote(record['id'], safe='')}", json=body)
            except (PermanentError, RetryableError) as exc:
                return WriteResult(record["id"], False, exc.message, exc.category.value)
        return WriteResult(record["id"], True, record=_clean(r.json()))

    async def delete(key: str) -> WriteResult:
        async with gate:
            try:
                await ctx.http.delete(f"/v1/{resource}/{quote(key, safe='')}")
            except PermanentError as exc:
                if exc.upstream_status != 404:  # already gone is what was asked
                    return WriteResult(key, False, exc.message, exc.category.value)
            except RetryableError as exc:
                return WriteResult(key, False, exc.message, exc.category.value)
        return WriteResult(key, True)

    return list(await asyncio.gather(*(upsert(r) for r in upserts), *(delete(k) for k in deletes)))


@connector.stream(
    "contacts", primary_key="id", cursor_field="updated_at", schema=CONTACT,
    description="People in the CRM.",
)  # fmt: skip
async def contacts(ctx: Context, cursor: str | None) -> AsyncIterator[Page]:
    async for page in _read(ctx, "contacts", cursor):
        yield page


@contacts.writer
async def write_contacts(
    ctx: Context, upserts: list[dict], deletes: list[str]
) -> list[WriteResult]:
    return await _write(ctx, "contacts", upserts, deletes)


@connector.stream(
    "companies", primary_key="id", cursor_field="updated_at", schema=COMPANY,
    description="Organisations contacts belong to.",
)  # fmt: skip
async def companies(ctx: Context, cursor: str | None) -> AsyncIterator[Page]:
    async for page in _read(ctx, "companies", cursor):
        yield page


@companies.writer
async def write_companies(
    ctx: Context, upserts: list[dict], deletes: list[str]
) -> list[WriteResult]:
    return await _write(ctx, "companies", upserts, deletes)


@connector.check
async def check(ctx: Context) -> None:
    await ctx.http.get("/v1/contacts", params={"limit": 1})


@connector.action(
    "create_contact",
    input_schema={
        "type": "object",
        "properties": {
            "email": {"type": "string", "format": "email", "minLength": 3},
            "first_name": {"type": "string"},
            "last_name": {"type": "string"},
        },
        "required": ["email"],
        "additionalProperties": False,
    },
    output_schema={
        "type": "object",
        "properties": {"id": {"type": "string"}, "email": {"type": "string"}},
        "required": ["id", "email"],
    },
    idempotent=False,
    description="Create a contact (send an Idempotency-Key to make retries safe).",
)
async def create_contact(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    r = await ctx.http.post("/v1/contacts", json=data)
    created = r.json()
    return {"id": created["id"], "email": created["email"]}


app = connector.app()
