"""People for tests: a user with an identity, memberships and a live session made straight in
the database (as a sign-in would), and the headers a same-site browser request sends with it.

Sign-in itself is tested through the real provider and browser (tests/gateway/test_sign_in*);
tests of what signed-in people may do start here."""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from gateway.sessions import cookies, tokens
from gateway.sessions import service as sessions
from gateway.users import repository as users
from gateway.users import service as user_service
from tests.support import TenantKey, connected

TIMEOUTS = sessions.Timeouts(idle_seconds=1800, absolute_seconds=43200)


@dataclass
class Person:
    user_id: uuid.UUID
    email: str | None
    session_id: uuid.UUID
    secret: str  # the session cookie's value
    origin: str  # the gateway's origin, for same-site requests
    subject: str = field(default="")

    @property
    def cookie(self) -> dict[str, str]:
        """Headers of a safe (GET) request from the browser holding the session."""
        return {"cookie": f"{cookies.SESSION}={self.secret}"}

    @property
    def csrf_token(self) -> str:
        return tokens.derive(self.secret, "csrf")

    @property
    def headers(self) -> dict[str, str]:
        """Headers of a same-site request that may change things (POST, PATCH, DELETE)."""
        return {
            **self.cookie,
            "origin": self.origin,
            "sec-fetch-site": "same-origin",
            "x-csrf-token": self.csrf_token,
        }


async def make_person(
    conn: asyncpg.Connection,
    *,
    origin: str,
    email: str | None = None,
    email_verified: bool = True,
    tenant_id: uuid.UUID | None = None,
    role: str | None = None,
    memberships: dict[uuid.UUID, str] | None = None,
    operator: bool = False,
    issuer: str = "https://idp.test.invalid",
    subject: str | None = None,
    provider: str = "test",
) -> Person:
    """A user signed in through ``issuer`` with a live session in ``tenant_id`` as ``role``
    (also a member of every tenant in ``memberships``)."""
    subject = subject or "sub-" + secrets.token_hex(6)
    email = email or f"{subject}@example.com"
    async with conn.transaction():
        user, _ = await user_service.sign_in(
            conn,
            user_service.Identity(
                issuer=issuer, subject=subject, provider=provider, email=email,
                email_verified=email_verified, name=subject,
            ),
        )  # fmt: skip
        wanted = dict(memberships or {})
        if tenant_id is not None and role is not None:
            wanted[tenant_id] = role
        for tid, member_role in wanted.items():
            await users.add_membership(
                conn, tenant_id=tid, user_id=user["id"], role=member_role, created_by="test"
            )
        if operator:
            await users.add_operator(conn, user["id"], added_by="test")
        issued = await sessions.start(
            conn, user_id=user["id"], tenant_id=tenant_id, role=role, provider=provider,
            issuer=issuer, timeouts=TIMEOUTS,
        )  # fmt: skip
    return Person(
        user_id=user["id"], email=email, session_id=issued.session["id"], secret=issued.secret,
        origin=origin, subject=subject,
    )  # fmt: skip


async def person(
    origin: str, dsn: str, t: TenantKey | None = None, role: str | None = None, **kw: Any
) -> Person:
    """:func:`make_person` on a connection of its own, signed in to ``t`` as ``role`` (no
    tenant: signed in, in none)."""
    async with connected(dsn) as conn:
        return await make_person(
            conn, origin=origin, tenant_id=t.tenant_id if t else None, role=role, **kw
        )


async def audit_of(dsn: str, tenant_id: uuid.UUID, prefix: str) -> list[dict]:
    """The tenant's audit entries whose action starts with ``prefix``, oldest first: action,
    actor, target, payload (parsed) and payload_text (as stored, to search for secrets in)."""
    async with connected(dsn) as conn:
        rows = await conn.fetch(
            "SELECT action, user_id AS actor, target, payload::text AS payload_text FROM audit_logs"
            " WHERE tenant_id = $1 AND starts_with(action, $2) ORDER BY seq",
            tenant_id, prefix,
        )  # fmt: skip
    return [{**dict(r), "payload": json.loads(r["payload_text"])} for r in rows]
