from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from common import audit
from common.errors import Forbidden, InvalidRequest, NotFound, Unauthorized
from common.roles import Permission, Role, allows, within
from gateway.api_keys import repository
from gateway.auth import keys


class ApiKeyNotFound(NotFound):
    code, title = "api_key_not_found", "API key not found"


async def create(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    name: str,
    role: Role = Role.editor,
    created_by: str | None,
    creator_role: str | None = None,
    expires_at: datetime | None = None,
    purpose: str = "user",
    request_id: str | None = None,
) -> dict[str, Any]:
    """Mint a key. The returned dict holds the secret under ``key``: it is never stored.

    ``creator_role`` is the role of whoever asks through the API: a key never gets a permission
    its creator lacks (an admin may not mint a publisher key). The CLI, run by an operator,
    passes none. A member's role (or a key's liveness) is read again and held until the
    transaction ends, see :func:`_hold_creator`."""
    if creator_role is not None:
        creator_role = await _hold_creator(
            conn, tenant_id=tenant_id, created_by=created_by, role=creator_role
        )
        if not within(role, creator_role):
            raise Forbidden(
                f"a {creator_role} may not create a {Role(role).value} key",
                code="role_not_grantable",
            )
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise InvalidRequest("expires_at must be in the future", code="invalid_expiry")
    secret = keys.generate()
    row = await repository.insert(
        conn,
        tenant_id=tenant_id,
        name=name,
        role=Role(role).value,
        prefix=keys.display_prefix(secret),
        key_hash=keys.digest(secret),
        purpose=purpose,
        created_by=created_by,
        expires_at=expires_at,
    )
    await audit.record(
        conn,
        tenant_id=tenant_id,
        actor=created_by,
        action="api_key.created",
        target=f"api_key:{row['id']}",
        payload={"api_key_id": str(row["id"]), "name": name, "role": row["role"]},
        request_id=request_id,
    )
    return {**dict(row), "key": secret}


async def list_keys(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, include_revoked: bool = False
) -> list[dict[str, Any]]:
    rows = await repository.list_for_tenant(conn, tenant_id, include_revoked=include_revoked)
    return [dict(r) for r in rows]


async def revoke(
    conn: asyncpg.Connection,
    key_id: uuid.UUID,
    *,
    tenant_id: uuid.UUID | None,
    actor: str | None,
    request_id: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Revoke a key (audited as ``api_key.revoked``, with ``reason`` when given). Revoking a
    revoked key changes nothing and records nothing."""
    row = await repository.revoke(conn, key_id, tenant_id=tenant_id)
    if row is None:
        raise ApiKeyNotFound(f"no API key {key_id}")
    if not row["newly_revoked"]:
        return dict(row)
    await audit.record(
        conn,
        tenant_id=row["tenant_id"],
        actor=actor,
        action="api_key.revoked",
        target=f"api_key:{key_id}",
        payload={"api_key_id": str(key_id)} | ({"reason": reason} if reason else {}),
        request_id=request_id,
    )
    return dict(row)


@dataclass(frozen=True, slots=True)
class Swept:
    revoked: list[dict[str, Any]]  # the keys revoked
    creators: list[str]  # ``created_by`` of everyone walked: the member and all their keys


async def revoke_with_descendants(
    conn: asyncpg.Connection,
    key_id: uuid.UUID,
    *,
    tenant_id: uuid.UUID | None,
    actor: str | None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Revoke a key and every key it made, and so on (``parent_revoked``): a leaked key that
    minted another before it was revoked leaves nothing live behind."""
    row = await revoke(conn, key_id, tenant_id=tenant_id, actor=actor, request_id=request_id)
    await revoke_made_by(
        conn, tenant_id=row["tenant_id"], creator=f"apikey:{key_id}", keep_within=None,
        reason="parent_revoked", actor=actor, request_id=request_id,
    )  # fmt: skip
    return row


async def revoke_made_by(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID | None = None,
    creator: str | None = None,
    keep_within: Role | None,
    reason: str,
    actor: str | None,
    request_id: str | None = None,
) -> Swept:
    """Revoke the live keys a member made in the tenant, and those their keys made, and so on:
    all of them (``keep_within`` None: they are no longer a member), or those granting more
    than ``keep_within`` (their new role). Each is audited as ``api_key.revoked`` with
    ``reason``; the caller clears the gateway's credential cache once committed. Returns what
    was revoked, and every creator walked (the member and all their keys, revoked or not).

    Each generation is locked before the next is read, so a key being minted meanwhile (by the
    member, or by one of these keys) is either refused or found here."""
    revoked: list[dict[str, Any]] = []
    creators = [creator or f"user:{user_id}"]
    walked: list[str] = []
    while creators:
        walked += creators
        made = await repository.lock_made_by(conn, tenant_id=tenant_id, creators=creators)
        for key in made:
            if key["live"] and (keep_within is None or not within(key["role"], keep_within)):
                row = await revoke(
                    conn,
                    key["id"],
                    tenant_id=tenant_id,
                    actor=actor,
                    request_id=request_id,
                    reason=reason,
                )
                revoked.append(row)
        creators = [f"apikey:{key['id']}" for key in made]
    return Swept(revoked, walked)


async def _hold_creator(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, created_by: str | None, role: str
) -> str:
    """The role a member minting a key has now (or ``role``, that of a key minting one, while
    that key is live), held until the transaction ends. A member removed or demoted a moment
    ago, whose session another gateway's cache still knows for a few seconds, mints nothing
    beyond their role now; a removal under way waits for the new key and then revokes it."""
    kind, _, ident = (created_by or "").partition(":")
    try:
        creator_id = uuid.UUID(ident)
    except ValueError:
        return role
    if kind == "user":
        held = await repository.lock_creator_membership(
            conn, tenant_id=tenant_id, user_id=creator_id
        )
        if held is None:
            raise Unauthorized(
                "your session in this tenant has ended: sign in again", code="session_expired"
            )
        if not allows(held, Permission.manage):  # demoted a moment ago
            raise Forbidden(f"role '{held}' may not manage API keys", required="manage")
        return held
    if (
        kind == "apikey"
        and await repository.lock_creator_key(conn, creator_id, tenant_id=tenant_id) is None
    ):
        raise Unauthorized("the API key is unknown, expired or revoked", code="invalid_credentials")
    return role


async def rotate_dev_key(conn: asyncpg.Connection, *, tenant_id: uuid.UUID) -> dict[str, Any]:
    """Revoke the previous development key(s) and mint a fresh admin one."""
    for old in await repository.revoke_purpose(conn, tenant_id=tenant_id, purpose="dev"):
        await audit.record(
            conn,
            tenant_id=tenant_id,
            actor="system:seedos-up",
            action="api_key.revoked",
            target=f"api_key:{old['id']}",
            payload={"api_key_id": str(old["id"]), "reason": "superseded dev key"},
        )
    return await create(
        conn,
        tenant_id=tenant_id,
        name="dev (seedos up)",
        role=Role.admin,
        created_by="system:seedos-up",
        purpose="dev",
    )
