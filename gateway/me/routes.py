"""Who is calling: ``/api/v1/me`` for every credential, and for people signed in with a
session their tenants, switching tenant, and their sessions."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import AliasChoices, BaseModel, Field

from common.db import ReadDb
from common.errors import PROBLEM_RESPONSES, Forbidden
from common.roles import GRANTS, Role
from gateway.deps import AnyPrincipal, Authenticated, Person, Settings
from gateway.sessions import cookies, tokens
from gateway.sessions import repository as session_repository
from gateway.sessions import service as sessions
from gateway.tenants import service as tenants
from gateway.users import service as users

router = APIRouter(prefix="/api/v1", tags=["me"], responses=PROBLEM_RESPONSES)


class TenantOut(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    industry: str | None
    size: int | None
    suspended: bool = False


class UserOut(BaseModel):
    id: uuid.UUID
    email: str | None
    email_verified: bool
    name: str | None = Field(validation_alias=AliasChoices("name", "display_name"))


class MembershipOut(BaseModel):
    tenant_id: uuid.UUID
    slug: str
    name: str
    role: Role
    suspended: bool


class SessionInfo(BaseModel):
    id: uuid.UUID
    provider: str
    created_at: datetime
    idle_expires_at: datetime = Field(description="Ends then unless used before")
    absolute_expires_at: datetime = Field(description="Ends then whatever happens")
    expires_at: datetime = Field(description="The earlier of the two: when it ends if idle now")


class MeOut(BaseModel):
    subject: str
    auth_method: str = Field(description="`api_key`, `session` or `jwt`")
    role: Role | None = Field(description="In the current tenant; null without one")
    permissions: list[str]
    tenant: TenantOut | None
    user: UserOut | None = None
    memberships: list[MembershipOut] = []
    operator: bool = False
    session: SessionInfo | None = None
    csrf_token: str | None = Field(
        None, description="Send as X-CSRF-Token with every cookie request that changes anything"
    )


class SessionOut(BaseModel):
    id: uuid.UUID
    provider: str
    created_at: datetime
    last_seen_at: datetime
    idle_expires_at: datetime
    absolute_expires_at: datetime
    user_agent: str | None
    client_address: str | None
    current: bool


class SessionList(BaseModel):
    items: list[SessionOut]
    next_cursor: str | None = None


class TenantSwitch(BaseModel):
    tenant: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9-]+$")


def _role(value: str) -> Role | None:
    try:
        return Role(value)
    except ValueError:
        return None


async def _me(
    db, principal, secret: str | None, *, tenant: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``tenant``: the principal's tenant when the caller has it read already."""
    role = _role(principal.role) if principal.has_tenant else None
    out: dict[str, Any] = {
        "subject": principal.subject,
        "auth_method": principal.auth_method,
        "role": role,
        "permissions": sorted(p.value for p in GRANTS[role]) if role else [],
        "tenant": None,
        "operator": principal.operator,
    }
    if principal.has_tenant:
        tenant = tenant or await tenants.get(db, principal.tenant_id)
        out["tenant"] = {**tenant, "suspended": principal.suspended}
    if principal.user_id is not None:
        out["user"] = await users.get(db, principal.user_id)
        out["memberships"] = await users.memberships(db, principal.user_id)
        row = await session_repository.get(db, principal.session_id)
        if row is not None:
            ends = min(row["idle_expires_at"], row["absolute_expires_at"])
            out["session"] = {**dict(row), "expires_at": ends}
        if secret is not None:
            out["csrf_token"] = tokens.derive(secret, "csrf")
    return out


@router.get("/me", response_model=MeOut)
async def me(request: Request, principal: AnyPrincipal, db: ReadDb) -> dict:
    """Who the credentials belong to: how they authenticated, the current tenant and role and
    what it may do; for a signed-in person also the user, every membership, whether they are
    a platform operator, when the session ends, and the CSRF token."""
    return await _me(db, principal, cookies.session_value(request.scope))


@router.get("/me/tenants", response_model=list[MembershipOut])
async def my_tenants(principal: Person, db: ReadDb) -> list[dict]:
    """The tenants the signed-in person belongs to, with their role in each."""
    assert principal.user_id is not None
    return await users.memberships(db, principal.user_id)


@router.post("/me/tenant", response_model=MeOut)
async def switch_tenant(
    request: Request,
    body: TenantSwitch,
    principal: Person,
    db: ReadDb,
    settings: Settings,
    auth: Authenticated,
) -> dict:
    """Switch the session to another of the person's tenants. The session id rotates: the
    answer sets the new cookie and carries the new CSRF token."""
    assert principal.user_id is not None and principal.session_id is not None
    async with db.transaction():
        tenant = await tenants.get_by_slug(db, body.tenant)
        membership = await users.membership(db, user_id=principal.user_id, tenant_id=tenant["id"])
        if membership is None:
            raise Forbidden(f"you are not a member of '{body.tenant}'", code="not_a_member")
        issued = await sessions.rotate(
            db, principal.session_id, tenant_id=tenant["id"], role=membership["role"]
        )
    auth.forget()
    cookies.send_session(
        request.scope, issued.secret, max_age=int(settings.session_absolute_seconds)
    )
    switched = replace(
        principal, tenant_id=tenant["id"], role=membership["role"], tenant_slug=tenant["slug"],
        suspended=membership["suspended"],
    )  # fmt: skip
    return await _me(db, switched, issued.secret, tenant=tenant)


@router.get("/me/sessions", response_model=SessionList)
async def my_sessions(principal: Person, db: ReadDb) -> dict:
    """The signed-in person's live sessions (newest first), this one marked `current`."""
    assert principal.user_id is not None
    rows = await sessions.list_live(db, principal.user_id)
    return {"items": [{**r, "current": r["id"] == principal.session_id} for r in rows]}


@router.delete("/me/sessions/{session_id}", response_model=SessionOut)
async def end_my_session(
    session_id: uuid.UUID, principal: Person, db: ReadDb, auth: Authenticated
) -> dict:
    """End one of the person's sessions (this one included): its WebSockets close within
    5 s. 404 for a session that is not theirs or has ended."""
    assert principal.user_id is not None
    async with db.transaction():
        ended = await sessions.end_own(
            db, session_id, user_id=principal.user_id, request_id=principal.request_id
        )
    auth.forget()
    return {**ended, "current": session_id == principal.session_id}
