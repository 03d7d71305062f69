"""Idempotency-Keys for a service's own operations (table ``idempotency_keys``).

``run_once`` takes the key in its own committed statement before the operation runs, so of many
concurrent requests with one key exactly one runs; the others get 409 while it runs and its
stored answer afterwards (``replayed``). The same key with another request is 422. An answer
worth retrying (5xx) is not stored: the key is freed and a retry runs again. Keys are scoped to
the tenant and the operation and kept ``ttl`` (at least 24 hours).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import orjson
from fastapi import Header, Request
from fastapi.responses import JSONResponse, Response

from common.db import Database
from common.errors import PROBLEM_JSON, Conflict, InvalidRequest

DEFAULT_TTL = timedelta(hours=24)
STALE_AFTER = timedelta(minutes=10)  # a run silent this long died with its process

_ROW = "id, request_hash, state, response_status, response_body"


class KeyReused(InvalidRequest):
    code, title = "idempotency_key_reused", "Idempotency-Key used for another request"


class InProgress(Conflict):
    code, title = "idempotency_in_progress", "A request with this Idempotency-Key is running"


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    replayed: bool = False
    # False for an answer that says nothing yet (another service's "still running"): the key
    # is freed instead of keeping that answer for every repeat
    final: bool = True


# The header as routes take it (optional: without it a request simply runs)
KeyHeader = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$",
           description="Optional: a repeat with the same key and body gets the first answer"),
]  # fmt: skip


def fingerprint(*parts: Any, secret: bytes) -> bytes:
    """What tells two requests apart: an HMAC of their canonical JSON under the services' key,
    so a stored fingerprint of a body with credentials in it cannot be used to guess them."""
    try:
        canonical = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:
        raise InvalidRequest("the request holds a value JSON here cannot carry",
                             code="invalid_input") from None  # fmt: skip
    return hmac.new(secret, canonical, hashlib.sha256).digest()


async def run_once(
    db: Database,
    *,
    tenant_id: uuid.UUID,
    scope: str,
    key: str,
    request_hash: bytes,
    operation: Callable[[], Awaitable[Answer]],
    ttl: timedelta = DEFAULT_TTL,
    finish: Callable[[Any, Answer], Awaitable[None]] | None = None,
) -> Answer:
    """``finish(conn, answer)``: more to write in the transaction that keeps a final answer
    (not for one that frees the key)."""
    while True:
        async with db.connection() as conn:
            row = await conn.fetchrow(
                "INSERT INTO idempotency_keys (tenant_id, scope, idempotency_key, request_hash,"
                " expires_at) VALUES ($1, $2, $3, $4, now() + $5::interval)"
                " ON CONFLICT (tenant_id, scope, idempotency_key) DO UPDATE"
                " SET id = gen_random_uuid(), request_hash = EXCLUDED.request_hash,"
                " state = 'running', response_status = NULL, response_body = NULL,"
                " started_at = now(), expires_at = EXCLUDED.expires_at"
                " WHERE idempotency_keys.expires_at < now() OR (idempotency_keys.state = 'running'"
                " AND idempotency_keys.started_at < now() - $6::interval"
                " AND idempotency_keys.request_hash = $4)"
                f" RETURNING {_ROW}",
                tenant_id, scope, key, request_hash, ttl, STALE_AFTER,
            )  # fmt: skip
            if row is not None:
                break
            held = await conn.fetchrow(
                f"SELECT {_ROW} FROM idempotency_keys"
                " WHERE tenant_id = $1 AND scope = $2 AND idempotency_key = $3",
                tenant_id, scope, key,
            )  # fmt: skip
        if held is None:
            continue  # freed between the two statements: ask again
        if bytes(held["request_hash"]) != request_hash:
            raise KeyReused("this Idempotency-Key was used for a different request; use a new key")
        if held["state"] == "running":
            raise InProgress("the first request with this Idempotency-Key is still running",
                             headers={"Retry-After": "1"})  # fmt: skip
        return Answer(held["response_status"], held["response_body"], replayed=True)
    try:
        answer = await operation()
    except BaseException:
        await _release(db, row["id"])
        raise
    if answer.status >= 500 or not answer.final:
        await _release(db, row["id"])
        return answer
    async with db.connection() as conn, conn.transaction():
        await conn.execute(
            "UPDATE idempotency_keys SET state = 'completed', response_status = $2,"
            " response_body = $3 WHERE id = $1",
            row["id"], answer.status, answer.body,
        )  # fmt: skip
        if finish is not None:
            await finish(conn, answer)
    return answer


async def once(
    request: Request,
    *,
    tenant_id: uuid.UUID,
    scope: str,
    key: str | None,
    body: Any,
    operation: Callable[[], Awaitable[Answer]],
) -> Answer:
    """``operation`` once per ``key`` (see ``run_once``) in a route's service, or simply run
    without a key. The fingerprint's key is the services' internal token key: rotating it
    makes a repeat of a request from before the rotation a 422 ``idempotency_key_reused``."""
    if key is None:
        return await operation()
    secret = request.app.state.settings.idempotency_key.get_secret_value().encode()
    return await run_once(
        request.app.state.db, tenant_id=tenant_id, scope=scope, key=key,
        request_hash=fingerprint(scope, body, secret=secret), operation=operation,
    )  # fmt: skip


def respond(answer: Answer) -> Response:
    """The answer as a route returns it, marked ``Idempotent-Replayed`` when it is a repeat."""
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    if answer.status == 204:
        return Response(status_code=204, headers=headers)
    media = PROBLEM_JSON if answer.status >= 400 else "application/json"
    return JSONResponse(answer.body, status_code=answer.status, media_type=media, headers=headers)


async def _release(db: Database, row_id: uuid.UUID) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "DELETE FROM idempotency_keys WHERE id = $1 AND state = 'running'", row_id
        )


async def sweep(db: Database, *, batch: int = 1000) -> int:
    total = 0
    while True:
        async with db.connection() as conn:
            result = await conn.execute(
                "DELETE FROM idempotency_keys WHERE id IN (SELECT id FROM idempotency_keys"
                " WHERE expires_at < now() LIMIT $1)",
                batch,
            )
        gone = int(result.split()[-1])
        total += gone
        if gone < batch:
            return total
