"""Resolves a request's credentials to a Principal without a database round trip per request.

Two kinds of credential: an API key (``Authorization: Bearer sk_seedos_...``), and a session
cookie (``__Host-seedos_session``) that a person's browser got at sign-in. A request with an
``Authorization`` header is judged by it alone; cookies are then ignored.

Verdicts (and unknown credentials) are cached for ``api_key_cache_ttl_seconds`` (at most 4 s,
so with the lookup's own time a revocation or a session ended anywhere takes effect within
5 s). Ending through this gateway also clears the cache once committed, and lookups already in
flight then are not cached. Concurrent misses for one credential share one lookup, which runs
in its own task so that one caller giving up does not fail the others.

A session lookup slides the session's idle expiry, and reads the role from the membership as
it is now: when that differs from the role the session was issued for, the session id rotates
(the new cookie goes out with this response, see :mod:`gateway.browser`).

Cookie-authenticated requests that change anything must come from this site: the browser's
``Sec-Fetch-Site`` and ``Origin`` say so, and the ``X-CSRF-Token`` header carries the token
``GET /api/v1/me`` gave (derived from the cookie). WebSocket handshakes with a cookie must
come from this origin.

Each credential has a key in the cache: ``b"k"`` and the SHA-256 of an API key, or ``b"s"`` and
the SHA-256 of a session cookie (the hashes the database holds). :meth:`Authenticator.authenticate`
leaves the key of the credential it accepted in the request's state (:func:`credential_of`); a
WebSocket ticket stores it, and :meth:`Authenticator.authenticate_credential` judges the socket
by it again, with the same lookup and the same suspension rule.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache
from starlette.requests import HTTPConnection

from common import db
from common.errors import Forbidden, Unauthorized
from common.internal_auth import Principal, bearer_token
from gateway.auth import failures, keys, repository
from gateway.sessions import cookies, tokens
from gateway.sessions import repository as sessions
from gateway.sessions import service as session_service

NO_TENANT = uuid.UUID(int=0)
NO_ROLE = "none"  # grants nothing (common.roles.allows)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = b"x-csrf-token"
API_KEY, SESSION = b"k", b"s"  # the first byte of a credential's cache key
# a session checked again without counting as its use (an open WebSocket): cached apart, so
# neither slides the idle expiry for the other
PEEK = b"p"
_CREDENTIAL = "credential"  # where authenticate() leaves that key in the request's state


class TenantSuspended(Forbidden):
    code, title = "tenant_suspended", "Tenant suspended"


class CsrfRefused(Forbidden):
    code, title = "csrf_refused", "Cross-site request refused"


def refuse_suspended(principal: Principal, method: str | None = None) -> None:
    failures.record(method or principal.auth_method, "tenant_suspended",
                    tenant=str(principal.tenant_id))  # fmt: skip
    raise TenantSuspended(
        f"tenant '{principal.tenant_slug}' is suspended: ask the platform's operators"
    )


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal | None
    suspended: bool = False
    rotated: str | None = None  # the session's new cookie value, when it was rotated
    stale: bool = False  # issued for another role than the one it has now: to rotate


class Authenticator:
    def __init__(
        self,
        database: db.Database,
        *,
        ttl_seconds: float,
        max_size: int,
        public_origin: str = "",
        timeouts: session_service.Timeouts | None = None,
    ) -> None:
        self._db = database
        self._ttl = ttl_seconds
        self._cache: TTLCache[bytes, _Entry] = TTLCache(
            maxsize=max_size, ttl=ttl_seconds or 1e-9, timer=time.monotonic
        )
        self._inflight: dict[bytes, asyncio.Task[_Entry]] = {}
        self._generation = 0
        self.public_origin = public_origin
        self.timeouts = timeouts or session_service.Timeouts(1800, 43200)
        self.failure_audit = failures.FailureAudit(database)

    async def authenticate(
        self, conn: HTTPConnection, *, allow_suspended: bool = False, use: bool = True
    ) -> Principal:
        """The caller, or 401 (no or bad credentials), 403 ``tenant_suspended``, 403
        ``csrf_refused``. ``allow_suspended``: for routes a suspended tenant's people still
        reach (who am I, sign out). ``use`` False: a check that is not activity (an open
        WebSocket's), which does not keep an idle session alive."""
        token = bearer_token(conn.scope)
        if token is not None or _has_authorization(conn.scope):
            key, entry = await self._api_key(token)
        else:
            secret = cookies.read(conn.scope, cookies.SESSION)
            if secret is None:
                failures.record("none", "missing_credentials")
                raise Unauthorized("sign in, or send an API key as 'Authorization: Bearer <key>'")
            key, entry = await self._session(secret, conn, use=use)
        principal = self._caller(entry, conn, allow_suspended=allow_suspended)
        conn.scope.setdefault("state", {})[_CREDENTIAL] = key
        return principal

    async def authenticate_credential(
        self, key: bytes, conn: HTTPConnection, *, use: bool = True
    ) -> Principal:
        """The caller a credential's cache key (:func:`credential_of`) stands for now, by the
        same cached lookup as :meth:`authenticate` and the same suspension rule: 401 when the
        key is unknown, revoked or expired or the session ended or expired, 403
        ``tenant_suspended``. No CSRF or Origin check: the key was taken from a request that
        passed them."""
        kind = key[:1]
        if kind == API_KEY:
            entry = await self._lookup(key, self._query_key)
        elif kind == SESSION and use:
            entry = await self._lookup(key, self._query_session)
        elif kind == SESSION:
            entry = await self._lookup(PEEK + key[1:], self._peek_session)
        else:
            raise Unauthorized("not a credential", code="invalid_credentials")
        if entry.principal is None:
            if kind == API_KEY:
                failures.record("api_key", "unknown_or_revoked")
                raise Unauthorized(
                    "the API key is unknown, expired or revoked", code="invalid_credentials"
                )
            failures.record("session", "ended_or_expired")
            raise Unauthorized(
                "the session has ended or expired: sign in again", code="session_expired"
            )
        return self._caller(entry, conn, allow_suspended=False)

    def _caller(self, entry: _Entry, conn: HTTPConnection, *, allow_suspended: bool) -> Principal:
        """The principal of an accepted credential's entry, refused when its tenant is
        suspended (unless ``allow_suspended``)."""
        principal = entry.principal
        assert principal is not None
        if entry.suspended and not allow_suspended:
            self._audit(principal, conn, TenantSuspended.code)
            refuse_suspended(principal)
        return Principal(
            tenant_id=principal.tenant_id,
            subject=principal.subject,
            role=principal.role,
            issuer="gateway",
            request_id=conn.scope.get("state", {}).get("request_id"),
            tenant_slug=principal.tenant_slug,
            auth_method=principal.auth_method,
            user_id=principal.user_id,
            session_id=principal.session_id,
            operator=principal.operator,
            suspended=entry.suspended,
        )

    def _audit(self, principal: Principal, conn: HTTPConnection, reason: str) -> None:
        if self.failure_audit is not None and principal.has_tenant:
            self.failure_audit.refused(
                tenant_id=principal.tenant_id, actor=principal.subject, reason=reason,
                path=conn.scope["path"], request_id=conn.scope.get("state", {}).get("request_id"),
            )  # fmt: skip

    def forget(self) -> None:
        """Drop every cached verdict, and keep lookups already running from being cached."""
        self._generation += 1
        self._cache.clear()

    async def _api_key(self, token: str | None) -> tuple[bytes, _Entry]:
        """The key's cache key and entry."""
        if token is None or not keys.looks_like_key(token):
            failures.record("api_key", "malformed")
            raise Unauthorized(
                "the bearer credential is not a valid API key", code="invalid_credentials"
            )
        key = API_KEY + keys.digest(token)
        entry = await self._lookup(key, self._query_key)
        if entry.principal is None:
            failures.record("api_key", "unknown_or_revoked")
            raise Unauthorized(
                "the API key is unknown, expired or revoked", code="invalid_credentials"
            )
        return key, entry

    async def _session(
        self, secret: str, conn: HTTPConnection, *, use: bool = True
    ) -> tuple[bytes, _Entry]:
        """The cache key of the cookie the session has from now on (a new one when this
        request rotated it), and its entry."""
        if not tokens.plausible(secret):
            failures.record("session", "malformed")
            raise Unauthorized("the session cookie is not valid: sign in again",
                               code="invalid_credentials")  # fmt: skip
        key = SESSION + tokens.digest(secret)
        if use:
            entry = await self._lookup(key, self._query_session)
        else:
            entry = await self._lookup(PEEK + key[1:], self._peek_session)
        if entry.principal is None:
            failures.record("session", "ended_or_expired")
            raise Unauthorized(
                "the session has ended or expired: sign in again", code="session_expired"
            )
        try:
            self._same_site(secret, conn)
        except CsrfRefused as exc:
            self._audit(entry.principal, conn, exc.code)
            raise
        if entry.stale and use and conn.scope["type"] == "http":  # a WebSocket cannot take one
            entry = await self._rotate(key, entry)
        if entry.rotated is not None:
            max_age = int(self.timeouts.absolute_seconds)
            cookies.send_session(conn.scope, entry.rotated, max_age=max_age)
            return SESSION + tokens.digest(entry.rotated), entry
        return key, entry

    def _same_site(self, secret: str, conn: HTTPConnection) -> None:
        """CSRF: a cookie-authenticated WebSocket or unsafe request must come from this site."""
        scope = conn.scope
        if scope["type"] == "websocket":
            if _header(scope, b"origin") != self.public_origin:
                failures.record("session", "websocket_cross_origin")
                raise CsrfRefused("a WebSocket with a session must be opened from this site")
            return
        if scope["method"] in SAFE_METHODS:
            return
        site, origin = _header(scope, b"sec-fetch-site"), _header(scope, b"origin")
        if site is not None and site != "same-origin":
            failures.record("session", "csrf_cross_site")
            raise CsrfRefused(f"a {site} request may not change anything with this session")
        if origin is not None and origin != self.public_origin:
            failures.record("session", "csrf_origin")
            raise CsrfRefused("the request's Origin is not this site")
        if site is None and origin is None:
            failures.record("session", "csrf_no_origin")
            raise CsrfRefused("the browser did not say where the request comes from")
        if not tokens.same(_header(scope, CSRF_HEADER), tokens.derive(secret, "csrf")):
            failures.record("session", "csrf_token")
            raise CsrfRefused(
                "send the session's CSRF token (GET /api/v1/me, csrf_token) in X-CSRF-Token"
            )

    async def _lookup(self, key: bytes, query) -> _Entry:
        entry = self._cache.get(key)
        if entry is not None:
            return entry
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._query_and_cache(key, query, self._generation))
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    async def _query_and_cache(self, key: bytes, query, generation: int) -> _Entry:
        entry = await query(key[1:])
        if self._ttl > 0 and generation == self._generation:
            self._cache[key] = entry
        return entry

    async def _query_key(self, key_hash: bytes) -> _Entry:
        async with self._db.connection() as conn:
            row = await repository.find_active_key(conn, key_hash)
        if row is None:
            return _Entry(None)
        principal = Principal(
            tenant_id=row["tenant_id"],
            subject=f"apikey:{row['id']}",
            role=row["role"],
            tenant_slug=row["tenant_slug"],
            auth_method="api_key",
        )
        return _Entry(principal, suspended=row["suspended"])

    async def _query_session(self, token_hash: bytes) -> _Entry:
        async with self._db.connection() as conn:
            row = await sessions.touch(conn, token_hash, idle_seconds=self.timeouts.idle_seconds)
        return _session_entry(row)

    async def _peek_session(self, token_hash: bytes) -> _Entry:
        async with self._db.connection() as conn:
            row = await sessions.peek(conn, token_hash)
        return _session_entry(row)

    async def _rotate(self, key: bytes, entry: _Entry) -> _Entry:
        """A new session id for the role the session now has; concurrent requests with the
        old cookie share one rotation (and all set the same new cookie)."""
        task = self._inflight.get(b"r" + key)
        if task is None:
            task = asyncio.create_task(self._rotate_and_cache(key, entry, self._generation))
            self._inflight[b"r" + key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(b"r" + key, None))
        return await asyncio.shield(task)

    async def _rotate_and_cache(self, key: bytes, entry: _Entry, generation: int) -> _Entry:
        principal = entry.principal
        assert principal is not None and principal.session_id is not None
        async with self._db.connection() as conn, conn.transaction():
            issued = await session_service.rotate(
                conn, principal.session_id, tenant_id=principal.tenant_id, role=principal.role
            )
        rotated = _Entry(principal, suspended=entry.suspended, rotated=issued.secret)
        if self._ttl > 0 and generation == self._generation:
            self._cache[key] = rotated
        return rotated


def credential_of(conn: HTTPConnection) -> bytes:
    """The cache key of the credential :meth:`Authenticator.authenticate` accepted for this
    request (it must have run)."""
    return conn.scope["state"][_CREDENTIAL]


def _session_entry(row: Any) -> _Entry:
    """What a session's row says the request acts as."""
    if row is None:
        return _Entry(None)
    role = row["role"]
    in_tenant = row["tenant_id"] is not None and role is not None
    principal = Principal(
        tenant_id=row["tenant_id"] if in_tenant else NO_TENANT,
        subject=f"user:{row['user_id']}",
        role=role if in_tenant else NO_ROLE,
        tenant_slug=row["tenant_slug"] if in_tenant else None,
        auth_method="session",
        user_id=row["user_id"],
        session_id=row["id"],
        operator=row["operator"],
    )
    # the role changed since the session was issued: the next HTTP answer rotates its id
    stale = row["current"] and in_tenant and role != row["issued_role"]
    return _Entry(principal, suspended=in_tenant and row["suspended"], stale=stale)


def _header(scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _has_authorization(scope) -> bool:
    return any(key == b"authorization" for key, _ in scope["headers"])
