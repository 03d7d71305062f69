from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from common import audit
from common.errors import Forbidden, InvalidRequest, NotFound
from common.roles import GRANTS, Role
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
    passes none."""
    if creator_role is not None and not GRANTS[Role(role)] <= GRANTS[Role(creator_role)]:
        raise Forbidden(
            f"a {creator_role} may not create a {Role(role).value} key", code="role_not_grantable"
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
) -> dict[str, Any]:
    """Revoke a key. Revoking a revoked key changes nothing and records nothing."""
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
        payload={"api_key_id": str(key_id)},
        request_id=request_id,
    )
    return dict(row)


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
