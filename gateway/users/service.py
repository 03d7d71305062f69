"""Users as providers know them. A user is found by (issuer, subject) only: an email, verified
or not, never finds or links an account (two providers asserting one email are two users until
an operator links them)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from common import audit
from common.errors import NotFound
from gateway.users import repository


class UserNotFound(NotFound):
    code, title = "user_not_found", "User not found"


@dataclass(frozen=True, slots=True)
class Identity:
    """What an ID token says about a person."""

    issuer: str
    subject: str
    provider: str  # the configured provider's name
    email: str | None
    email_verified: bool
    name: str | None

    @property
    def verified_email(self) -> str | None:
        return self.email.lower() if self.email and self.email_verified else None


async def sign_in(conn: asyncpg.Connection, identity: Identity) -> tuple[dict[str, Any], bool]:
    """The user this identity belongs to, created on first sign-in, with the email and name
    the provider asserts now. Returns (user, created). Runs in the caller's transaction,
    which it holds a lock on the identity in until it ends."""
    await repository.lock_identity(conn, issuer=identity.issuer, subject=identity.subject)
    row = await repository.identity_user(conn, issuer=identity.issuer, subject=identity.subject)
    created = row is None
    if row is None:
        row = await repository.insert_user(
            conn, email=identity.email, email_verified=identity.email_verified,
            name=identity.name,
        )  # fmt: skip
    else:
        row = await repository.update_user(
            conn, row["id"], email=identity.email, email_verified=identity.email_verified,
            name=identity.name,
        )  # fmt: skip
    await repository.upsert_identity(
        conn, issuer=identity.issuer, subject=identity.subject, user_id=row["id"],
        provider=identity.provider, email=identity.email, email_verified=identity.email_verified,
    )  # fmt: skip
    if created:
        await audit.record(
            conn, tenant_id=None, actor=f"user:{row['id']}", action="user.created",
            target=f"user:{row['id']}",
            payload={"provider": identity.provider, "issuer": identity.issuer},
        )  # fmt: skip
    return dict(row), created


async def get(conn: asyncpg.Connection, user_id: uuid.UUID) -> dict[str, Any]:
    row = await repository.get(conn, user_id)
    if row is None:
        raise UserNotFound(f"no user {user_id}")
    return dict(row)


async def memberships(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[dict[str, Any]]:
    return [dict(r) for r in await repository.memberships(conn, user_id)]


async def membership(
    conn: asyncpg.Connection, *, user_id: uuid.UUID, tenant_id: uuid.UUID
) -> dict[str, Any] | None:
    row = await repository.membership(conn, user_id=user_id, tenant_id=tenant_id)
    return dict(row) if row else None
