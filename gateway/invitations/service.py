"""Invitations: an admin invites an email address to the tenant with a role; the person who
signs in with that address, verified, accepts once and becomes a member.

The link holds a 256-bit token shown once (in the answer to the admin, and in the email when
one is sent); only its SHA-256 is stored, and no audit entry or log line carries it."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple, get_args

import asyncpg

from common import audit
from common.errors import Conflict, Forbidden, InvalidRequest, NotFound, SeedosError
from common.pagination import decode_cursor, encode_cursor
from common.roles import Role, within
from gateway.auth import failures
from gateway.invitations import repository
from gateway.members import service as members
from gateway.tenants import service as tenants
from gateway.users import repository as users

TOKEN_BYTES = 32
Status = Literal["pending", "accepted", "revoked", "expired"]
STATUSES: tuple[str, ...] = get_args(Status)
# one @, something on each side, a dot in the domain, no spaces (the provider's verification
# is what proves an address; this only keeps obvious mistakes out)
EMAIL = re.compile(r"^[^@\s\x00]{1,64}@[^@\s\x00]+\.[^@\s\x00.][^@\s\x00]*$")
MAX_EMAIL = 320


class InvalidEmail(InvalidRequest):
    code, title = "invalid_email", "Invalid email address"


class InvitationNotFound(NotFound):
    code, title = "invitation_not_found", "Invitation not found"


class InvitationInvalid(SeedosError):
    """Unknown, used, revoked or expired: one answer, which does not say which."""

    status, code, title = 400, "invitation_invalid", "Invitation invalid"

    def __init__(self) -> None:
        super().__init__("the invitation is unknown, used, revoked or expired: ask for a new one")


class InvitationEmailMismatch(Forbidden):
    """Raised after the refusal was recorded (``invitation.refused``) in the caller's
    transaction: commit it, then answer the error."""

    code, title = "invitation_email_mismatch", "Invitation is for another email"


class AlreadyMember(Conflict):
    code, title = "already_member", "Already a member"


class InvitationAccepted(Conflict):
    code, title = "invitation_accepted", "Invitation accepted already"


class Invited(NamedTuple):
    tenant_slug: str
    email: str


@dataclass(frozen=True, slots=True)
class Created:
    """A new invitation, its link (holding the token: shown once) and the tenant's name."""

    invitation: dict[str, Any]
    link: str
    tenant_name: str


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def digest(token: str) -> bytes:
    """What is stored of a token (and what ``login_flows.invitation_hash`` keeps)."""
    return hashlib.sha256(token.encode()).digest()


def plausible(token: str | None) -> bool:
    """A value that could be one of our tokens (43 URL-safe characters), before any lookup."""
    return (
        token is not None
        and len(token) == 43
        and token.isascii()
        and all(c.isalnum() or c in "-_" for c in token)
    )


def link(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/auth/invitations/{token}"


def normalise_email(email: str) -> str:
    value = email.strip().lower()
    if len(value) > MAX_EMAIL or not EMAIL.match(value):
        raise InvalidEmail(f"'{email[:100]}' is not an email address")
    return value


async def create(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    email: str,
    role: Role | str,
    invited_by: str,
    inviter_role: str | None,
    valid_days: float,
    public_url: str,
    request_id: str | None = None,
) -> Created:
    """Invite ``email`` as ``role`` for ``valid_days``. An earlier pending invitation of the
    same address is revoked (one link works at a time). ``inviter_role`` None is an operator
    (the CLI); anyone else invites to no role beyond their own."""
    role = Role(role)
    members.check_grantable(role, inviter_role)
    email = normalise_email(email)
    if await repository.member_with_verified_email(conn, tenant_id=tenant_id, email=email):
        raise AlreadyMember(f"{email} is a member already")
    tenant = await tenants.get(conn, tenant_id)
    for old in await repository.revoke_pending_for(conn, tenant_id=tenant_id, email=email):
        await _audit_revoked(conn, tenant_id, old["id"], invited_by, request_id, "superseded")
    token = new_token()
    row = await repository.insert(
        conn, tenant_id=tenant_id, email=email, role=role.value, token_hash=digest(token),
        invited_by=invited_by, valid_seconds=valid_days * 86400,
    )  # fmt: skip
    await audit.record(
        conn, tenant_id=tenant_id, actor=invited_by, action="invitation.created",
        target=f"invitation:{row['id']}",
        payload={"invitation_id": str(row["id"]), "email": email, "role": role.value,
                 "expires_at": row["expires_at"].isoformat()},
        request_id=request_id,
    )  # fmt: skip
    return Created(dict(row), link(public_url, token), tenant["name"])


async def list_invitations(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    status: str | None = None,
    cursor: str | None = None,
    limit: int,
) -> dict[str, Any]:
    """One page of the tenant's invitations, newest first (never their tokens)."""
    key = decode_cursor(cursor, parse=(datetime.fromisoformat, uuid.UUID))
    rows = await repository.list_page(
        conn, tenant_id, status=status, before=(key[0], key[1]) if key else None,
        limit=limit + 1,
    )  # fmt: skip
    items = [dict(r) for r in rows[:limit]]
    last = items[-1] if items else None
    more = len(rows) > limit and last is not None
    next_cursor = encode_cursor([last["created_at"].isoformat(), last["id"]]) if more else None
    return {"items": items, "next_cursor": next_cursor}


async def revoke(
    conn: asyncpg.Connection,
    invitation_id: uuid.UUID,
    *,
    tenant_id: uuid.UUID,
    actor: str,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Revoke an invitation: its link stops working. Revoking a revoked one changes nothing;
    an accepted one is 409 (remove the member instead)."""
    row = await repository.revoke(conn, invitation_id, tenant_id=tenant_id)
    if row is not None:
        await _audit_revoked(conn, tenant_id, invitation_id, actor, request_id, None)
        return dict(row)
    row = await repository.get(conn, invitation_id, tenant_id=tenant_id)
    if row is None:
        raise InvitationNotFound(f"no invitation {invitation_id}")
    if row["status"] == "accepted":
        raise InvitationAccepted("the invitation was accepted: remove the member instead")
    return dict(row)


async def revoke_made_by(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    creators: list[str],
    keep_within: Role | None,
    reason: str,
    actor: str,
    request_id: str | None = None,
) -> int:
    """Revoke the pending invitations ``creators`` (a member and the keys they made) made in
    the tenant: all (``keep_within`` None: the member is gone), or those inviting to more than
    ``keep_within`` (their new role): no one re-enters through an invitation left behind.
    Audited per invitation; returns how many."""
    count = 0
    for row in await repository.lock_pending_made_by(conn, tenant_id=tenant_id, creators=creators):
        if keep_within is not None and within(row["role"], keep_within):
            continue
        if await repository.revoke(conn, row["id"], tenant_id=tenant_id) is not None:
            await _audit_revoked(conn, tenant_id, row["id"], actor, request_id, reason)
            count += 1
    return count


async def _audit_revoked(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    invitation_id: uuid.UUID,
    actor: str,
    request_id: str | None,
    reason: str | None,
) -> None:
    payload = {"invitation_id": str(invitation_id)} | ({"reason": reason} if reason else {})
    await audit.record(
        conn, tenant_id=tenant_id, actor=actor, action="invitation.revoked",
        target=f"invitation:{invitation_id}", payload=payload, request_id=request_id,
    )  # fmt: skip


def _hash_of(token: str | None, token_hash: bytes | None) -> bytes | None:
    if token_hash is not None:
        return token_hash if len(token_hash) == 32 else None
    return digest(token) if plausible(token) else None


async def invitation_for(
    conn: asyncpg.Connection, token: str | None = None, *, token_hash: bytes | None = None
) -> Invited | None:
    """(tenant slug, invited email) of a pending invitation, for the sign-in page ("You were
    invited to ..."); None when the token is unknown, used, revoked or expired."""
    hashed = _hash_of(token, token_hash)
    row = await repository.pending_by_hash(conn, hashed) if hashed else None
    return Invited(row["tenant_slug"], row["email"]) if row else None


async def accept(
    conn: asyncpg.Connection,
    *,
    token: str | None = None,
    token_hash: bytes | None = None,
    user_id: uuid.UUID,
    email: str | None,
    email_verified: bool,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Accept an invitation (by its token, or the token's SHA-256 as ``login_flows`` keeps it)
    for a signed-in user: they become a member with the invited role, and the invitation is
    used up. Audited as ``invitation.accepted``.

    Raises :class:`InvitationInvalid` (400: unknown, used, revoked or expired),
    :class:`InvitationEmailMismatch` (403: the user's email is not the invited one, or not
    verified; recorded as ``invitation.refused`` in the caller's transaction, so commit before
    answering) or :class:`AlreadyMember` (409; the invitation stays pending). Returns
    ``{"invitation_id", "tenant_id", "tenant_slug", "tenant_name", "user_id", "role"}``."""
    hashed = _hash_of(token, token_hash)
    invitation = await repository.pending_by_hash(conn, hashed) if hashed else None
    if invitation is None:
        failures.record("invitation", "invalid")
        raise InvitationInvalid()
    tenant_id, invitation_id = invitation["tenant_id"], invitation["id"]
    if not email_verified or not email or email.strip().lower() != invitation["email"].lower():
        reason = "email_unverified" if email and not email_verified else "email_mismatch"
        # no email: the tenant's admins need not learn the address of whoever opened the link
        await audit.record(
            conn, tenant_id=tenant_id, actor=f"user:{user_id}", action="invitation.refused",
            target=f"invitation:{invitation_id}",
            payload={"invitation_id": str(invitation_id), "user_id": str(user_id),
                     "reason": reason},
            request_id=request_id,
        )  # fmt: skip
        failures.record("invitation", reason)
        raise InvitationEmailMismatch(
            "the invitation is for another email address: sign in with the invited one"
            if reason == "email_mismatch"
            else "your provider has not verified your email address: verify it, then sign in"
        )
    if await users.membership(conn, user_id=user_id, tenant_id=tenant_id) is not None:
        raise AlreadyMember(f"you are a member of {invitation['tenant_slug']} already")
    # a savepoint: a refusal from here on undoes what it changed, and nothing the caller did
    async with conn.transaction():
        added = await _use(conn, invitation, user_id=user_id)
    await audit.record(
        conn, tenant_id=tenant_id, actor=f"user:{user_id}", action="invitation.accepted",
        target=f"invitation:{invitation_id}",
        payload={"invitation_id": str(invitation_id), "user_id": str(user_id),
                 "role": added["role"]},
        request_id=request_id,
    )  # fmt: skip
    return {
        "invitation_id": invitation_id,
        "tenant_id": tenant_id,
        "tenant_slug": invitation["tenant_slug"],
        "tenant_name": invitation["tenant_name"],
        "user_id": user_id,
        "role": added["role"],
    }


async def _use(conn: asyncpg.Connection, invitation: Any, *, user_id: uuid.UUID) -> Any:
    """Use the invitation up and add the membership."""
    invitation_id = invitation["id"]
    if not await repository.consume(conn, invitation_id, user_id=user_id):
        failures.record("invitation", "invalid")
        raise InvitationInvalid()  # used, revoked or expired a moment ago
    added = await users.add_membership(
        conn, tenant_id=invitation["tenant_id"], user_id=user_id, role=invitation["role"],
        created_by=f"invitation:{invitation_id}",
    )  # fmt: skip
    if added is None:  # joined another way a moment ago: the rollback keeps the invitation
        raise AlreadyMember(f"you are a member of {invitation['tenant_slug']} already")
    return added
