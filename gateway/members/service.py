"""A tenant's members: listed by everyone in it, changed by its admins, and left by
themselves. A tenant always keeps an admin: the last one is neither demoted nor removed.

Changing or ending a membership changes who may call: the member's sessions take the new role
or end, and the API keys they made lose what the member no longer has (revoked, see
:func:`gateway.api_keys.service.revoke_made_by`). The caller clears the gateway's credential
cache once its transaction has committed
(:meth:`gateway.auth.authenticator.Authenticator.forget`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from common import audit
from common.errors import Conflict, Forbidden, NotFound
from common.pagination import decode_cursor, encode_cursor
from common.roles import Permission, Role, allows, within
from gateway.api_keys import service as api_keys
from gateway.invitations import service as invitations
from gateway.members import repository
from gateway.sessions import service as sessions


class MemberNotFound(NotFound):
    code, title = "member_not_found", "Member not found"


class LastAdmin(Conflict):
    code, title = "last_admin", "The tenant's last admin"


def check_grantable(role: str, granter_role: str | None) -> None:
    """Nobody grants a permission they lack (an admin makes no publisher); ``granter_role``
    None is an operator (the CLI), who may grant any role."""
    if granter_role is not None and not within(role, granter_role):
        raise Forbidden(
            f"a {granter_role} may not grant the role {Role(role).value}",
            code="role_not_grantable",
        )


async def list_members(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, cursor: str | None, limit: int
) -> dict[str, Any]:
    """One page of the tenant's members, in the order they joined."""
    key = decode_cursor(cursor, parse=(datetime.fromisoformat, uuid.UUID))
    rows = await repository.list_page(
        conn, tenant_id, after=(key[0], key[1]) if key else None, limit=limit + 1
    )
    items = [dict(r) for r in rows[:limit]]
    last = items[-1] if items else None
    more = len(rows) > limit and last is not None
    next_cursor = encode_cursor([last["joined_at"].isoformat(), last["user_id"]]) if more else None
    return {"items": items, "next_cursor": next_cursor}


async def get(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, user_id: uuid.UUID
) -> dict[str, Any]:
    row = await repository.get(conn, tenant_id=tenant_id, user_id=user_id)
    if row is None:
        raise MemberNotFound(f"user {user_id} is not a member of this tenant")
    return dict(row)


async def _lock(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[str, int]:
    """The member's role and how many admins the tenant has, both locked until the caller's
    transaction ends (so two admins cannot demote each other at once and leave none)."""
    rows = await repository.lock_admins_and(conn, tenant_id=tenant_id, user_id=user_id)
    role = next((r["role"] for r in rows if r["user_id"] == user_id), None)
    if role is None:
        raise MemberNotFound(f"user {user_id} is not a member of this tenant")
    return role, sum(r["role"] == Role.admin for r in rows)


async def change_role(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    role: Role | str,
    actor: str,
    granter_role: str | None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Give a member another role (audited as ``member.role_changed``). Their sessions take
    the new role on their next request (the session id rotates then), and the API keys they
    made that grant more than it are revoked (``api_key.revoked``, ``member_role_changed``);
    ``revoked_api_keys`` says how many. Setting the role a member has changes nothing and
    records nothing."""
    role = Role(role)
    check_grantable(role, granter_role)
    current, admins = await _lock(conn, tenant_id=tenant_id, user_id=user_id)
    if current == role:
        unchanged = {"revoked_api_keys": 0, "revoked_invitations": 0}
        return await get(conn, tenant_id=tenant_id, user_id=user_id) | unchanged
    if current == Role.admin and admins <= 1:
        raise LastAdmin("the tenant's last admin keeps the role: make another member admin first")
    row = await repository.set_role(conn, tenant_id=tenant_id, user_id=user_id, role=role.value)
    assert row is not None  # locked above
    await audit.record(
        conn, tenant_id=tenant_id, actor=actor, action="member.role_changed",
        target=f"user:{user_id}",
        payload={"user_id": str(user_id), "from": current, "to": role.value},
        request_id=request_id,
    )  # fmt: skip
    return dict(row) | await revoke_made_by(
        conn, tenant_id=tenant_id, user_id=user_id, keep_within=role,
        reason="member_role_changed", actor=actor, request_id=request_id,
    )  # fmt: skip


async def remove(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    actor: str,
    actor_user_id: uuid.UUID | None = None,
    actor_role: str | None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Remove a member, end their sessions in the tenant and revoke the API keys they made in
    it (audited as ``member.removed``, ``session.ended`` per session and ``api_key.revoked``
    per key, both with the reason ``member_removed``; ``revoked_api_keys`` says how many
    keys). Admins remove anyone; a member may remove themself
    (leave). ``actor_role`` None is an operator (the CLI). The last admin stays."""
    leaving = actor_user_id is not None and actor_user_id == user_id
    if actor_role is not None and not leaving and not allows(actor_role, Permission.manage):
        raise Forbidden(
            f"role '{actor_role}' may not remove other members", required=Permission.manage.value
        )
    current, admins = await _lock(conn, tenant_id=tenant_id, user_id=user_id)
    if current == Role.admin and admins <= 1:
        raise LastAdmin("the tenant's last admin stays: make another member admin first")
    row = await repository.delete(conn, tenant_id=tenant_id, user_id=user_id)
    assert row is not None  # locked above
    await audit.record(
        conn, tenant_id=tenant_id, actor=actor, action="member.removed",
        target=f"user:{user_id}",
        payload={"user_id": str(user_id), "role": current, "left": leaving},
        request_id=request_id,
    )  # fmt: skip
    await sessions.end(
        conn, reason="member_removed", actor=actor, user_id=user_id, tenant_id=tenant_id,
        request_id=request_id,
    )  # fmt: skip
    return dict(row) | await revoke_made_by(
        conn, tenant_id=tenant_id, user_id=user_id, keep_within=None, reason="member_removed",
        actor=actor, request_id=request_id,
    )  # fmt: skip


async def revoke_made_by(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    keep_within: Role | None,
    reason: str,
    actor: str,
    request_id: str | None = None,
) -> dict[str, int]:
    """Revoke the live API keys the member made in the tenant (and those their keys made), and
    the pending invitations any of them made: all (``keep_within`` None: no longer a member)
    or those granting more than ``keep_within``. Returns ``revoked_api_keys`` and
    ``revoked_invitations``, how many of each."""
    keys = await api_keys.revoke_made_by(
        conn, tenant_id=tenant_id, user_id=user_id, keep_within=keep_within, reason=reason,
        actor=actor, request_id=request_id,
    )  # fmt: skip
    invited = await invitations.revoke_made_by(
        conn, tenant_id=tenant_id, creators=keys.creators, keep_within=keep_within,
        reason=reason, actor=actor, request_id=request_id,
    )  # fmt: skip
    return {"revoked_api_keys": len(keys.revoked), "revoked_invitations": invited}
