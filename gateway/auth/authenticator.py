"""Resolves a request's credentials to a Principal without a database round trip per request.

Three kinds of credential: an API key (``Authorization: Bearer sk_seedos_...``), a session
cookie (``__Host-seedos_session``) that a person's browser got at sign-in, and a bearer JWT of
a configured issuer (``Authorization: Bearer eyJ...``, :mod:`gateway.auth.jwts`). A request
with an ``Authorization`` header is judged by it alone; cookies are then ignored.

Verdicts (and unknown credentials) are cached for ``api_key_cache_ttl_seconds`` (at most 4 s,
so with the lookup's own time a revocation or a session ended anywhere takes effect within
5 s). Ending through this gateway also clears the cache once committed, and lookups already in
flight then are not cached. Concurrent misses for one credential share one lookup, which runs
in its own task so that one caller giving up does not fail the others.

A session lookup slides the session's idle expiry, and reads the role from the membership as
it is now: when that differs from the role the session was issued for, the session id rotates
(the new cookie goes out with this response, see :mod:`gateway.browser`).

Cookie-authenticated requests that change anything, and WebSocket handshakes with a cookie,
must come from this site (:mod:`gateway.auth.csrf`).

Each credential has a key in the cache: ``b"k"`` and the SHA-256 of an API key, or ``b"s"`` and
the SHA-256 of a session cookie (the hashes the database holds). :meth:`Authenticator.authenticate`
leaves the key of the credential it accepted in the request's state (:func:`credential_of`); a
WebSocket ticket stores it, and :meth:`Authenticator.authenticate_credential` judges the socket
by it again, with the same lookup and the same suspension rule.

A JWT's verdict is cached as ``b"j"`` and the SHA-256 of the token and the tenant the request
chose, never past the token's ``exp``; what it leaves for a ticket is what the token was found
to be (``b"J"``, :func:`gateway.auth.jwt_callers.credential`), judged again until it expires.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from cachetools import TTLCache
from starlette.requests import HTTPConnection

from common import db
from common.errors import Forbidden, GatewayTimeout, SeedosError, Unauthorized
from common.internal_auth import Principal, bearer_token
from gateway.auth import failures, jwt_callers, jwts, keys, repository
from gateway.auth.csrf import CsrfRefused, check_same_site
from gateway.auth.jwks import ProviderUnavailable
from gateway.sessions import cookies, tokens
from gateway.sessions import repository as sessions
from gateway.sessions import service as session_service

NO_TENANT = uuid.UUID(int=0)
NO_ROLE = "none"  # grants nothing (common.roles.allows)
API_KEY, SESSION, JWT = b"k", b"s", b"j"  # the first byte of a credential's cache key
# a session checked again without counting as its use (an open WebSocket): cached apart, so
# neither slides the idle expiry for the other
PEEK = b"p"
ROTATION = b"r"  # before a session's cache key: its rotation under way
_CREDENTIAL = "credential"  # where authenticate() leaves that key in the request's state


class TenantSuspended(Forbidden):
    code, title = "tenant_suspended", "Tenant suspended"


def refuse_suspended(principal: Principal) -> None:
    failures.record(principal.auth_method, "tenant_suspended", tenant=str(principal.tenant_id))
    raise TenantSuspended(
        f"tenant '{principal.tenant_slug}' is suspended: ask the platform's operators"
    )


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal | None
    suspended: bool = False
    rotated: str | None = None  # the session's new cookie value, when it was rotated
    stale: bool = False  # issued for another role than the one it has now: to rotate
    expires: float = math.inf  # a JWT's exp: the entry is not used from then on
    credential: bytes | None = None  # a JWT's, for tickets (jwt_callers.credential)
    refused: SeedosError | None = None  # a verified JWT that stands for nobody here


class Authenticator:
    def __init__(
        self,
        database: db.Database,
        *,
        ttl_seconds: float,
        max_size: int,
        public_origin: str,
        timeouts: session_service.Timeouts,
        issuers: jwts.Issuers,
    ) -> None:
        self._db = database
        self._ttl = ttl_seconds
        self._cache: TTLCache[bytes, _Entry] = TTLCache(
            maxsize=max_size, ttl=ttl_seconds or 1e-9, timer=time.monotonic
        )
        self._inflight: dict[bytes, asyncio.Task[_Entry]] = {}
        self._generation = 0
        self.public_origin = public_origin
        self.timeouts = timeouts
        self.failure_audit = failures.FailureAudit(database)
        self.issuers = issuers

    async def authenticate(
        self, conn: HTTPConnection, *, allow_suspended: bool = False, use: bool = True
    ) -> Principal:
        """The caller, or 401 (no or bad credentials), 403 ``tenant_suspended``, 403
        ``csrf_refused``. ``allow_suspended``: for routes a suspended tenant's people still
        reach (who am I, sign out). ``use`` False: a check that is not activity (an open
        WebSocket's), which does not keep an idle session alive."""
        token = bearer_token(conn.scope)
        if token is not None and self.issuers and jwts.looks_like_jwt(token):
            key, entry = await self._jwt(token, conn, recheck=not use)
        elif token is not None or "authorization" in conn.headers:
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
            entry = _found(await self._lookup(key, self._query_key), kind)
        elif kind == SESSION:
            entry = _found(await self._session_entry(key, use=use), kind)
        elif kind == jwt_callers.CREDENTIAL:
            entry = await self._jwt_credential(key)
        else:
            raise Unauthorized("not a credential", code="invalid_credentials")
        return self._caller(entry, conn, allow_suspended=False)

    def _caller(self, entry: _Entry, conn: HTTPConnection, *, allow_suspended: bool) -> Principal:
        """The principal of an accepted credential's entry, refused when its tenant is
        suspended (unless ``allow_suspended``)."""
        principal = entry.principal
        assert principal is not None
        if entry.suspended and not allow_suspended:
            self._audit(principal, conn, TenantSuspended.code)
            refuse_suspended(principal)
        request_id = conn.scope.get("state", {}).get("request_id")
        return replace(principal, request_id=request_id, suspended=entry.suspended)

    def _audit(self, principal: Principal, conn: HTTPConnection, reason: str) -> None:
        if principal.has_tenant:
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
        return key, _found(await self._lookup(key, self._query_key), API_KEY)

    async def _jwt(
        self, token: str, conn: HTTPConnection, *, recheck: bool = False
    ) -> tuple[bytes, _Entry]:
        """The ticket credential of a bearer JWT and its entry: verified once, then cached (by
        the token and the tenant the request chose) until it expires. ``recheck``: an open
        WebSocket's, refused from ``exp`` on (no leeway: the token was good when it opened)."""
        tenant = conn.headers.get(jwt_callers.TENANT_HEADER)
        key = JWT + hashlib.sha256(f"{token}\n{tenant or ''}".encode()).digest()
        entry = self._cache.get(key)
        if entry is None or entry.expires <= time.time():
            try:
                entry = await self._once(key, lambda: self._verify_jwt(token, tenant), cache_as=key)
            except jwts.TokenRefused as exc:
                failures.record("jwt", exc.reason)
                raise
            except (ProviderUnavailable, GatewayTimeout):
                failures.record("jwt", "issuer_unavailable")
                raise
        entry = _found(entry, JWT)
        if recheck and entry.expires <= time.time():
            failures.record("jwt", "expired")
            raise jwts.TokenRefused("expired", "the token has expired")
        assert entry.credential is not None
        return entry.credential, entry

    async def _verify_jwt(self, token: str, tenant: str | None) -> _Entry:
        verified = await self.issuers.verify(token, tenant=tenant)
        return await self._jwt_entry(verified, self.issuers.by_name[verified.issuer])

    async def _jwt_credential(self, key: bytes) -> _Entry:
        """A JWT caller's ticket credential judged again: refused once the token expires."""
        verified = jwt_callers.from_credential(key)
        try:
            issuer = self.issuers.still_valid(verified)
        except jwts.TokenRefused as exc:
            failures.record("jwt", exc.reason)
            raise
        entry = self._cache.get(key)
        if entry is None:
            entry = await self._once(key, lambda: self._jwt_entry(verified, issuer), cache_as=key)
        return _found(entry, JWT)

    async def _jwt_entry(self, verified: jwts.Verified, issuer: jwts.Issuer) -> _Entry:
        try:
            async with self._db.connection() as conn:
                caller = await jwt_callers.resolve(conn, verified, issuer)
            credential = jwt_callers.credential(verified, caller)
        except (jwt_callers.NotLinked, jwt_callers.TenantRequired, Forbidden,
                jwts.TokenRefused) as exc:  # fmt: skip
            return _Entry(None, expires=verified.expires, refused=exc)
        return _Entry(caller.principal, suspended=caller.suspended, expires=verified.expires,
                      credential=credential)  # fmt: skip

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
        entry = _found(await self._session_entry(key, use=use), SESSION)
        try:
            check_same_site(conn, secret, public_origin=self.public_origin)
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

    async def _lookup(self, key: bytes, query) -> _Entry:
        entry = self._cache.get(key)
        if entry is not None:
            return entry
        return await self._once(key, lambda: query(key[1:]), cache_as=key)

    async def _session_entry(self, key: bytes, *, use: bool) -> _Entry:
        """A session's entry by its cache key: as a use (sliding its idle expiry), or peeked."""
        if use:
            return await self._lookup(key, self._query_session)
        return await self._lookup(PEEK + key[1:], self._peek_session)

    async def _once(self, task_key: bytes, work, *, cache_as: bytes) -> _Entry:
        """Runs ``work`` once for everyone asking with ``task_key`` meanwhile, in its own task
        (one caller giving up does not fail the others), caching what it gives as
        ``cache_as`` unless :meth:`forget` was called since it started."""
        task = self._inflight.get(task_key)
        if task is None:
            task = asyncio.create_task(self._run_and_cache(work, cache_as, self._generation))
            self._inflight[task_key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(task_key, None))
        return await asyncio.shield(task)

    async def _run_and_cache(self, work, key: bytes, generation: int) -> _Entry:
        entry = await work()
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
        principal = entry.principal
        assert principal is not None and principal.session_id is not None

        async def rotate() -> _Entry:
            async with self._db.connection() as conn, conn.transaction():
                issued = await session_service.rotate(
                    conn, principal.session_id, tenant_id=principal.tenant_id,
                    role=principal.role,
                )  # fmt: skip
            return _Entry(principal, suspended=entry.suspended, rotated=issued.secret)

        return await self._once(ROTATION + key, rotate, cache_as=key)


def _found(entry: _Entry, kind: bytes) -> _Entry:
    """The entry of a credential that is accepted, or 401."""
    if entry.principal is not None:
        return entry
    if entry.refused is not None:
        failures.record("jwt", getattr(entry.refused, "reason", "refused"))
        raise entry.refused.with_traceback(None)
    if kind == API_KEY:
        failures.record("api_key", "unknown_or_revoked")
        raise Unauthorized("the API key is unknown, expired or revoked", code="invalid_credentials")
    failures.record("session", "ended_or_expired")
    raise Unauthorized("the session has ended or expired: sign in again", code="session_expired")


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
