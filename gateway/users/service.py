"""Users as providers know them. A user is found by (issuer, subject) only: an email, verified
or not, never finds or links an account (two providers asserting one email are two users until
an operator links them with :func:`link`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from common import audit
from common.errors import Conflict, InvalidRequest, NotFound
from common.roles import Role
from gateway.members import service as members
from gateway.members.service import LastAdmin
from gateway.sessions import service as sessions
from gateway.users import repository


class UserNotFound(NotFound):
    code, title = "user_not_found", "User not found"


class LinkToSelf(InvalidRequest):
    code, title = "link_same_user", "A user is not linked to themself"


class LinkOperator(Conflict):
    code, title = "link_operator", "Linking would move the operator role"


@dataclass(frozen=True, slots=True)
class Identity:
    """What an ID token says about a person."""

    issuer: str
    subject: str
    provider: str  # the configured provider's name
    email: str | None
    email_verified: bool
    name: str | None


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


# ------------------------------------------------------------------------------ finding


async def profiles(
    conn: asyncpg.Connection,
    *,
    email: str | None = None,
    issuer: str | None = None,
    subject: str | None = None,
) -> list[dict[str, Any]]:
    """Every user with this verified email (several when providers assert the same address),
    or the user of this identity: each with their identities, memberships and whether they are
    an operator. Reads only. An unverified email finds nobody (:class:`UserNotFound`)."""
    if issuer is not None and subject is not None:
        user_id = await repository.find_identity(conn, issuer=issuer, subject=subject)
        if user_id is None:
            raise UserNotFound(f"nobody has signed in as subject '{subject}' of '{issuer}'")
        user_ids = [user_id]
    elif email is not None:
        user_ids = await repository.with_verified_email(conn, email)
        if not user_ids:
            raise UserNotFound(f"no user has signed in with the verified email '{email}'")
    else:
        raise InvalidRequest("give an email, or an issuer and a subject", code="invalid_input")
    return [await profile(conn, user_id) for user_id in user_ids]


async def profile(conn: asyncpg.Connection, user_id: uuid.UUID) -> dict[str, Any]:
    """The user with their identities, memberships and operator role."""
    return await get(conn, user_id) | {
        "identities": [dict(r) for r in await repository.identities(conn, user_id)],
        "memberships": await memberships(conn, user_id),
        "operator": await repository.is_operator(conn, user_id),
    }


# ------------------------------------------------------------------------------ linking


async def link(
    conn: asyncpg.Connection,
    *,
    keep: uuid.UUID,
    merge: uuid.UUID,
    actor: str,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Make two users one, for an operator who knows they are one person: every identity of
    ``merge`` moves to ``keep``, and ``merge`` is deleted.

    Nothing ever grants more by linking. ``keep`` takes ``merge``'s memberships in tenants
    where it has none; where both are members ``keep``'s role stays and a different role of
    ``merge`` is reported in ``conflicts`` (the keys ``merge`` made there that grant more than
    it are revoked). An operator is merged only into an operator (:class:`LinkOperator`), and
    a tenant's last admin only into an admin of it (:class:`LastAdmin`). ``merge``'s live
    sessions end (``user_linked``), what names it as an actor (``user:<id>``) names ``keep``,
    and ``user.linked`` is audited in the system's chain and in each of ``merge``'s tenants.
    The caller clears the gateway's credential cache once committed."""
    if keep == merge:
        raise LinkToSelf(f"user {keep} is the same user on both sides: choose two users")
    # A sign-in of one of merge's identities waits for the link, then finds keep. Taken
    # before the users' rows, in the order sign-in takes them; and again after, for an
    # identity a link committed meanwhile moved to merge (those held already cost nothing).
    await _lock_identities(conn, merge)
    found = {r["id"]: dict(r) for r in await repository.lock_users(conn, [keep, merge])}
    await _lock_identities(conn, merge)
    for side, user_id in (("keep", keep), ("merge", merge)):
        if user_id not in found:
            raise UserNotFound(f"no user {user_id} (the one to {side})")
    if await repository.is_operator(conn, merge) and not await repository.is_operator(conn, keep):
        raise LinkOperator(
            f"user {merge} is a platform operator and {keep} is not: a link moves no operator"
            f" role. If {keep} is to be one, make them one first (seedos operator add)"
        )
    outcome = await _merge_memberships(
        conn, keep=keep, merge=merge, actor=actor, request_id=request_id
    )
    reattributed = await repository.reattribute(conn, from_user=merge, to_user=keep)
    ended = await sessions.end(
        conn, reason="user_linked", actor=actor, user_id=merge, request_id=request_id
    )
    await repository.move_sessions(conn, from_user=merge, to_user=keep)
    moved = [dict(r) for r in await repository.move_identities(conn, from_user=merge, to_user=keep)]
    await repository.delete_user(conn, merge)
    result = {
        "keep": found[keep], "merge": found[merge], "identities": moved,
        "memberships": outcome["memberships"], "conflicts": outcome["conflicts"],
        "revoked_api_keys": outcome["revoked_api_keys"], "sessions_ended": len(ended),
        "reattributed": {k: v for k, v in reattributed.items() if v},
    }  # fmt: skip
    await _audit_link(conn, result, actor=actor, request_id=request_id)
    return result


async def _lock_identities(conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
    for key in await repository.identity_keys(conn, user_id):
        await repository.lock_identity(conn, issuer=key["issuer"], subject=key["subject"])


async def _merge_memberships(
    conn: asyncpg.Connection,
    *,
    keep: uuid.UUID,
    merge: uuid.UUID,
    actor: str,
    request_id: str | None,
) -> dict[str, Any]:
    """Move or drop each of ``merge``'s memberships (in tenant order, locked as a role change
    locks them). Refuses before changing anything when a tenant would lose its last admin."""
    plans = []
    for m in sorted(await memberships(conn, merge), key=lambda m: m["tenant_id"]):
        rows = await repository.lock_tenant_members(
            conn, tenant_id=m["tenant_id"], user_ids=[keep, merge]
        )
        roles = {r["user_id"]: r["role"] for r in rows}
        merge_role, keep_role = roles[merge], roles.get(keep)
        others = sum(r["role"] == Role.admin for r in rows if r["user_id"] not in (keep, merge))
        if merge_role == Role.admin and keep_role not in (None, Role.admin) and not others:
            raise LastAdmin(
                f"user {merge} is the last admin of tenant {m['slug']}, where {keep} is"
                f" {keep_role}: make {keep} admin there first (seedos members set-role)"
            )
        plans.append((m, merge_role, keep_role))
    items, conflicts, revoked = [], [], 0
    for m, merge_role, keep_role in plans:
        tenant_id = m["tenant_id"]
        item = {"tenant_id": tenant_id, "slug": m["slug"], "merge_role": merge_role}
        if keep_role is None:
            await repository.move_membership(
                conn, tenant_id=tenant_id, from_user=merge, to_user=keep
            )
            items.append(item | {"role": merge_role, "outcome": "moved"})
            continue
        await repository.delete_membership(conn, tenant_id=tenant_id, user_id=merge)
        # nor do their keys or pending invitations grant anything beyond the role kept
        gone = await members.revoke_made_by(
            conn, tenant_id=tenant_id, user_id=merge, keep_within=Role(keep_role),
            reason="user_linked", actor=actor, request_id=request_id,
        )  # fmt: skip
        revoked += gone["revoked_api_keys"]
        items.append(item | {"role": keep_role, "outcome": "kept"})
        if keep_role != merge_role:
            conflicts.append(item | {"role": keep_role})
    return {"memberships": items, "conflicts": conflicts, "revoked_api_keys": revoked}


async def _audit_link(
    conn: asyncpg.Connection, result: dict[str, Any], *, actor: str, request_id: str | None
) -> None:
    keep, merge = result["keep"]["id"], result["merge"]["id"]
    base = {"keep": str(keep), "merge": str(merge)}
    await audit.record(
        conn, tenant_id=None, actor=actor, action="user.linked", target=f"user:{keep}",
        payload=base | {
            "identities": [{"issuer": i["issuer"], "subject": i["subject"]}
                           for i in result["identities"]],
            "tenants": [m["slug"] for m in result["memberships"]],
            "conflicts": [m["slug"] for m in result["conflicts"]],
            "sessions_ended": result["sessions_ended"],
            "revoked_api_keys": result["revoked_api_keys"],
        },
        request_id=request_id,
    )  # fmt: skip
    for m in result["memberships"]:
        # the tenant's admins see a member replaced by another, with the role that remains
        await audit.record(
            conn, tenant_id=m["tenant_id"], actor=actor, action="user.linked",
            target=f"user:{keep}",
            payload=base | {"role": m["role"], "merge_role": m["merge_role"],
                            "outcome": m["outcome"]},
            request_id=request_id,
        )  # fmt: skip
