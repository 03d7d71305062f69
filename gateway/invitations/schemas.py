from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from common.roles import Role
from gateway.invitations.service import EMAIL, MAX_EMAIL, Status

Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, min_length=3, max_length=MAX_EMAIL,
        pattern=EMAIL.pattern,
    ),
    Field(description="The address to invite; stored lowercase", examples=["ada@example.com"]),
]  # fmt: skip


class InvitationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    role: Role = Field(Role.viewer, description="The role on acceptance; no higher than yours")


class InvitationOut(BaseModel):
    id: uuid.UUID
    email: str
    role: Role
    status: Status = Field(
        description="`pending` until accepted, revoked or past `expires_at` (then `expired`)"
    )
    invited_by: str = Field(description="`user:<id>`, `apikey:<id>` or `system:cli`")
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    accepted_by: uuid.UUID | None = Field(description="The user who accepted")
    revoked_at: datetime | None


class InvitationCreated(InvitationOut):
    link: str = Field(
        description="The invitation link, `<public URL>/auth/invitations/<token>`. Shown only"
        " in this response (and the email): store or send it now."
    )
    emailed: bool = Field(
        description="Whether the email server took the invitation email. False when no SMTP"
        " server is configured or sending failed: the link works either way."
    )


class InvitationPage(BaseModel):
    items: list[InvitationOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page")


class InvitationAccept(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(
        min_length=1, max_length=200, description="The token: the last part of the link"
    )


class TenantRef(BaseModel):
    id: uuid.UUID
    slug: str
    name: str


class InvitationAcceptance(BaseModel):
    invitation_id: uuid.UUID
    role: Role = Field(description="Your role in the tenant")
    tenant: TenantRef = Field(
        description="The tenant you joined: switch to it with POST /api/v1/me/tenant"
    )
