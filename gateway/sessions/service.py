"""Sessions: started at sign-in, rotated on a tenant switch or role change, ended by logout,
expiry, removal from the tenant, or by the user from another session.

Every function takes a connection in the caller's transaction. Ending sessions changes who may
call: the caller clears the gateway's credential cache once its transaction has committed
(:meth:`gateway.auth.authenticator.Authenticator.forget`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from common import audit
from common.errors import NotFound
from gateway.sessions import repository, tokens


class SessionNotFound(NotFound):
    code, title = "session_not_found", "Session not found"


@dataclass(frozen=True, slots=True)
class Timeouts:
    idle_seconds: float
    absolute_seconds: float


@dataclass(frozen=True, slots=True)
class Issued:
    """A session and the cookie value that names it (shown to the browser once, never kept)."""

    session: dict[str, Any]
    secret: str


async def start(
    conn: asyncpg.Connection,
    *,
    user_id: uuid.UUID,
    tenant_id: uuid.UUID | None,
    role: str | None,
    provider: str,
    issuer: str | None,
    timeouts: Timeouts,
    user_agent: str | None = None,
    client_address: str | None = None,
    replacing: str | None = None,
    request_id: str | None = None,
) -> Issued:
    """A new session with a new id (a sign-in never keeps the id the browser had). A live
    session the browser still held (``replacing``: its cookie value) is ended."""
    if replacing is not None and tokens.plausible(replacing):
        await repository.end(conn, token_hash=tokens.digest(replacing), reason="signed_in_again")
    secret = tokens.new_secret()
    row = await repository.insert(
        conn, token_hash=tokens.digest(secret), user_id=user_id, tenant_id=tenant_id, role=role,
        provider=provider, issuer=issuer, idle_seconds=timeouts.idle_seconds,
        absolute_seconds=timeouts.absolute_seconds,
        user_agent=(user_agent or "")[:512] or None, client_address=client_address,
    )  # fmt: skip
    await audit.record(
        conn, tenant_id=tenant_id, actor=f"user:{user_id}", action="session.started",
        target=f"session:{row['id']}", payload={"provider": provider, "role": role},
        request_id=request_id,
    )  # fmt: skip
    return Issued(dict(row), secret)


async def rotate(
    conn: asyncpg.Connection,
    session_id: uuid.UUID,
    *,
    tenant_id: uuid.UUID | None,
    role: str | None,
) -> Issued:
    """A new id for a live session, issued for ``tenant_id`` and ``role``."""
    secret = tokens.new_secret()
    row = await repository.rotate(
        conn, session_id, token_hash=tokens.digest(secret), tenant_id=tenant_id, role=role
    )
    if row is None:
        raise SessionNotFound("the session has ended")
    return Issued(dict(row), secret)


async def end(
    conn: asyncpg.Connection,
    *,
    reason: str,
    actor: str,
    session_id: uuid.UUID | None = None,
    secret: str | None = None,
    user_id: uuid.UUID | None = None,
    tenant_id: uuid.UUID | None = None,
    request_id: str | None = None,
) -> list[dict[str, Any]]:
    """End the live sessions matching every filter given; audited per session (in its tenant,
    or the system's for sessions outside any). Returns what was ended."""
    token_hash = None
    if secret is not None:
        if not tokens.plausible(secret):
            return []
        token_hash = tokens.digest(secret)
    rows = await repository.end(
        conn, reason=reason, session_id=session_id, token_hash=token_hash, user_id=user_id,
        tenant_id=tenant_id,
    )  # fmt: skip
    for row in rows:
        await audit.record(
            conn, tenant_id=row["tenant_id"], actor=actor, action="session.ended",
            target=f"session:{row['id']}", payload={"reason": reason},
            request_id=request_id,
        )  # fmt: skip
    return [dict(r) for r in rows]


async def end_own(
    conn: asyncpg.Connection,
    session_id: uuid.UUID,
    *,
    user_id: uuid.UUID,
    request_id: str | None = None,
) -> dict[str, Any]:
    """A user ends one of their own sessions (404 for anyone else's, or one already ended)."""
    ended = await end(
        conn, reason="ended_by_user", actor=f"user:{user_id}", session_id=session_id,
        user_id=user_id, request_id=request_id,
    )  # fmt: skip
    if not ended:
        raise SessionNotFound(f"no live session {session_id}")
    return ended[0]


async def list_live(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[dict[str, Any]]:
    return [dict(r) for r in await repository.list_live(conn, user_id)]
