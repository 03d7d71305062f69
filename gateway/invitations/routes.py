from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from common.db import Db, Pool, ReadDb
from common.errors import PROBLEM_RESPONSES
from common.pagination import DEFAULT_LIMIT, CursorParam, Limit
from common.roles import Permission
from gateway.deps import Authenticated, CurrentPrincipal, Person, Settings, require
from gateway.invitations import mailer, service
from gateway.invitations.schemas import (
    InvitationAccept,
    InvitationAcceptance,
    InvitationCreate,
    InvitationCreated,
    InvitationOut,
    InvitationPage,
    Status,
)
from gateway.oidc import service as oidc

router = APIRouter(prefix="/api/v1/invitations", tags=["invitations"], responses=PROBLEM_RESPONSES)


@router.get("", response_model=InvitationPage, dependencies=[require(Permission.manage)])
async def list_invitations(
    db: ReadDb,
    principal: CurrentPrincipal,
    status: Annotated[Status | None, Query(description="Only invitations in this state")] = None,
    cursor: CursorParam = None,
    limit: Limit = DEFAULT_LIMIT,
) -> dict:
    """The tenant's invitations, newest first, with their state (admins). Never their links."""
    return await service.list_invitations(
        db, tenant_id=principal.tenant_id, status=status, cursor=cursor, limit=limit
    )


@router.post(
    "",
    response_model=InvitationCreated,
    status_code=status.HTTP_201_CREATED,
    dependencies=[require(Permission.manage)],
    responses={409: {"description": "`already_member`: a member has this verified email"}},
)
async def create_invitation(
    body: InvitationCreate, pool: Pool, principal: CurrentPrincipal, settings: Settings
) -> dict:
    """Invite an email address with a role (admins; no role beyond your own: 403
    `role_not_grantable`). The answer holds the link, shown only here: it works once, for
    `SEEDOS_GATEWAY_INVITATION_DAYS` days (default 7), for whoever signs in with that address
    verified. With an SMTP server configured the link is also emailed (`emailed`). A pending
    invitation of the same address is revoked. Audited as `invitation.created`."""
    # committed, and the connection back in the pool, before the email is sent (no connection
    # waits on an SMTP server)
    async with pool.connection() as conn, conn.transaction():
        created = await service.create(
            conn, tenant_id=principal.tenant_id, email=body.email, role=body.role,
            invited_by=principal.subject, inviter_role=principal.role,
            valid_days=settings.invitation_days, public_url=settings.public_url,
            request_id=principal.request_id,
        )  # fmt: skip
    invitation = created.invitation
    emailed = await mailer.send_created(settings.smtp, created)
    return {**invitation, "link": created.link, "emailed": emailed}


@router.delete(
    "/{invitation_id}",
    response_model=InvitationOut,
    dependencies=[require(Permission.manage)],
    responses={409: {"description": "`invitation_accepted`: remove the member instead"}},
)
async def revoke_invitation(invitation_id: uuid.UUID, db: Db, principal: CurrentPrincipal) -> dict:
    """Revoke an invitation (admins): its link stops working. Revoking twice is harmless.
    Audited as `invitation.revoked`."""
    return await service.revoke(
        db, invitation_id, tenant_id=principal.tenant_id, actor=principal.subject,
        request_id=principal.request_id,
    )  # fmt: skip


@router.post(
    "/accept",
    response_model=InvitationAcceptance,
    responses={
        400: {"description": "`invitation_invalid`: unknown, used, revoked or expired"},
        409: {"description": "`already_member` (the invitation stays pending)"},
    },
)
async def accept_invitation(
    request: Request,
    body: InvitationAccept,
    person: Person,  # before the connection: see tests/common/test_apps.py
    db: ReadDb,
    auth: Authenticated,
    settings: Settings,
) -> dict:
    """Accept an invitation as the signed-in person (a session; API keys get 403
    `session_required`). Your provider must have verified your email, and it must be the
    invited one (403 `invitation_email_mismatch`, recorded in the tenant's audit trail as
    `invitation.refused`). You become a member with the invited role: switch to the tenant
    with POST /api/v1/me/tenant. Audited as `invitation.accepted`."""
    assert person.user_id is not None  # a Person has one
    request.app.state.auth_limiter.check(
        request.client.host if request.client else None, what="invitation"
    )
    refused: service.InvitationEmailMismatch | None = None
    async with db.transaction():
        email, verified = await oidc.vouched_email(
            db, person.user_id, token=body.token, settings=settings
        )
        try:
            accepted = await service.accept(
                db, token=body.token, user_id=person.user_id, email=email,
                email_verified=verified, request_id=person.request_id,
            )  # fmt: skip
        except service.InvitationEmailMismatch as exc:
            refused = exc  # the refusal's audit entry is committed before it is answered
    if refused is not None:
        raise refused
    auth.forget()  # a session already in that tenant acts as the member from now on
    return {
        "invitation_id": accepted["invitation_id"],
        "role": accepted["role"],
        "tenant": {"id": accepted["tenant_id"], "slug": accepted["tenant_slug"],
                   "name": accepted["tenant_name"]},
    }  # fmt: skip
