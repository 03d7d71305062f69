"""Resolves a request's credentials to a Principal without a database round trip per request.

Verified keys (and unknown ones) are cached for ``api_key_cache_ttl_seconds`` (at most 4 s, so
with the lookup's own time a revocation made anywhere takes effect within 5 s). A revocation
through this gateway also clears the cache once committed, and lookups that were already in
flight then are not cached. Concurrent misses for one key share one lookup, which runs in its
own task so that one caller giving up does not fail the others.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from cachetools import TTLCache
from starlette.requests import HTTPConnection

from common import db
from common.errors import Unauthorized
from common.internal_auth import Principal, bearer_token
from gateway.auth import keys, repository


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal | None


class Authenticator:
    def __init__(self, database: db.Database, *, ttl_seconds: float, max_size: int) -> None:
        self._db = database
        self._ttl = ttl_seconds
        self._cache: TTLCache[bytes, _Entry] = TTLCache(
            maxsize=max_size, ttl=ttl_seconds or 1e-9, timer=time.monotonic
        )
        self._inflight: dict[bytes, asyncio.Task[_Entry]] = {}
        self._generation = 0

    async def authenticate(self, conn: HTTPConnection) -> Principal:
        token = bearer_token(conn.scope)
        if token is None:
            raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
        if not keys.looks_like_key(token):
            raise Unauthorized(
                "the bearer credential is not a valid API key", code="invalid_credentials"
            )
        principal = (await self._lookup(keys.digest(token))).principal
        if principal is None:
            raise Unauthorized(
                "the API key is unknown, expired or revoked", code="invalid_credentials"
            )
        return Principal(
            tenant_id=principal.tenant_id,
            subject=principal.subject,
            role=principal.role,
            issuer="gateway",
            request_id=conn.scope.get("state", {}).get("request_id"),
            tenant_slug=principal.tenant_slug,
        )

    def forget(self) -> None:
        """Drop every cached verdict, and keep lookups already running from being cached."""
        self._generation += 1
        self._cache.clear()

    async def _lookup(self, key_hash: bytes) -> _Entry:
        entry = self._cache.get(key_hash)
        if entry is not None:
            return entry
        task = self._inflight.get(key_hash)
        if task is None:
            task = asyncio.create_task(self._query_and_cache(key_hash, self._generation))
            self._inflight[key_hash] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key_hash, None))
        return await asyncio.shield(task)

    async def _query_and_cache(self, key_hash: bytes, generation: int) -> _Entry:
        async with self._db.connection() as conn:
            row = await repository.find_active_key(conn, key_hash)
        entry = _Entry(None)
        if row is not None:
            entry = _Entry(
                Principal(
                    tenant_id=row["tenant_id"],
                    subject=f"apikey:{row['id']}",
                    role=row["role"],
                    tenant_slug=row["tenant_slug"],
                )
            )
        if self._ttl > 0 and generation == self._generation:
            self._cache[key_hash] = entry
        return entry
