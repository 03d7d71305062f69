"""Resolves a request's credentials to a Principal without a database round trip per request.

Verified keys (and unknown ones) are cached for ``api_key_cache_ttl_seconds`` (at most 5 s), so
a revocation takes effect within that time on every gateway replica; this replica also forgets a
key the moment it revokes it. Concurrent misses for one key share one lookup.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from cachetools import TTLCache
from starlette.requests import HTTPConnection

from common import db
from common.errors import Unauthorized
from common.internal_auth import Principal
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
        self._inflight: dict[bytes, asyncio.Future[_Entry]] = {}

    async def authenticate(self, conn: HTTPConnection) -> Principal:
        token = bearer_token(conn)
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
        request_id = conn.scope.get("state", {}).get("request_id")
        return Principal(
            tenant_id=principal.tenant_id,
            subject=principal.subject,
            role=principal.role,
            issuer="gateway",
            request_id=request_id,
            tenant_slug=principal.tenant_slug,
        )

    def forget(self, key_hash: bytes | None = None) -> None:
        """Drop cached verdicts: one key's, or all (after a revocation by id)."""
        if key_hash is None:
            self._cache.clear()
        else:
            self._cache.pop(key_hash, None)

    async def _lookup(self, key_hash: bytes) -> _Entry:
        entry = self._cache.get(key_hash)
        if entry is not None:
            return entry
        pending = self._inflight.get(key_hash)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[_Entry] = asyncio.get_running_loop().create_future()
        self._inflight[key_hash] = future
        try:
            entry = await self._query(key_hash)
            if self._ttl > 0:
                self._cache[key_hash] = entry
            future.set_result(entry)
            return entry
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[key_hash]

    async def _query(self, key_hash: bytes) -> _Entry:
        async with self._db.connection() as conn:
            row = await repository.find_active_key(conn, key_hash)
        if row is None:
            return _Entry(None)
        return _Entry(
            Principal(
                tenant_id=row["tenant_id"],
                subject=f"apikey:{row['id']}",
                role=row["role"],
                tenant_slug=row["tenant_slug"],
            )
        )


def bearer_token(conn: HTTPConnection) -> str | None:
    value = conn.headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
