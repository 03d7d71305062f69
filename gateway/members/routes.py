from __future__ import annotations

import uuid

from fastapi import APIRouter

from common.db import ReadDb
from common.errors import PROBLEM_RESPONSES
from common.pagination import DEFAULT_LIMIT, CursorParam, Limit
from common.roles import Permission
from gateway.deps import Authenticated, CurrentPrincipal, require
from gateway.members import service
from gateway.members.schemas import MemberChanged, MemberPage, MemberUpdate

router = APIRouter(prefix="/api/v1/members", tags=["members"], responses=PROBLEM_RESPONSES)
LAST_ADMIN = {409: {"description": "`last_admin`: the tenant's last admin stays one"}}


@router.get("", response_model=MemberPage, dependencies=[require(Permission.read)])
async def list_members(
    db: ReadDb,
    principal: CurrentPrincipal,
    cursor: CursorParam = None,
    limit: Limit = DEFAULT_LIMIT,
) -> dict:
    """The tenant's members in the order they joined, one page at a time: who they are (as
    their provider last said), their role, and when they last signed in."""
    return await service.list_members(db, tenant_id=principal.tenant_id, cursor=cursor, limit=limit)


# The two routes that change memberships commit themselves: the credential cache is cleared
# after the change is committed, or a lookup in between could cache the old role, session or
# revoked key.
@router.patch(
    "/{user_id}",
    response_model=MemberChanged,
    dependencies=[require(Permission.manage)],
    responses=LAST_ADMIN,
)
async def change_member_role(
    user_id: uuid.UUID,
    body: MemberUpdate,
    db: ReadDb,
    principal: CurrentPrincipal,
    auth: Authenticated,
) -> dict:
    """Change a member's role (admins). Nobody grants a role beyond their own (403
    `role_not_grantable`: an admin makes no publisher); the last admin is not demoted (409
    `last_admin`). The member's sessions take the new role on their next request; the API keys
    they made (and those their keys made) that grant more than it are revoked at once:
    `revoked_api_keys` says how many. Audited as `member.role_changed` and `api_key.revoked`."""
    async with db.transaction():
        member = await service.change_role(
            db, tenant_id=principal.tenant_id, user_id=user_id, role=body.role,
            actor=principal.subject, granter_role=principal.role,
            request_id=principal.request_id,
        )  # fmt: skip
    # this replica uses the new role and refuses the revoked keys from now on; others within
    # their cache TTL
    auth.forget()
    return member


@router.delete(
    "/{user_id}",
    response_model=MemberChanged,
    dependencies=[require(Permission.read)],
    responses=LAST_ADMIN,
)
async def remove_member(
    user_id: uuid.UUID, db: ReadDb, principal: CurrentPrincipal, auth: Authenticated
) -> dict:
    """Remove a member (admins), or leave (a signed-in person removing themself, whatever
    their role). Their sessions in this tenant end at once, the caller's own too when leaving,
    and the API keys they made there (and those their keys made) are revoked: `revoked_api_keys`
    says how many. The last admin stays (409 `last_admin`). Audited as `member.removed`,
    `session.ended` and `api_key.revoked`. Answers the membership as it was."""
    async with db.transaction():
        member = await service.remove(
            db, tenant_id=principal.tenant_id, user_id=user_id, actor=principal.subject,
            actor_user_id=principal.user_id, actor_role=principal.role,
            request_id=principal.request_id,
        )  # fmt: skip
    auth.forget()
    return member
