from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from gateway.admin.service import REASON_MAX, Status
from gateway.invitations.schemas import Email, InvitationCreated
from gateway.tenants.schemas import NO_NUL, Industry, Name, Size


class AdminTenant(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    industry: str | None
    size: int | None
    status: Status
    suspended_at: datetime | None
    suspended_reason: str | None
    members: int = Field(description="People with a membership")
    installs: int = Field(description="Connector installs, whatever their status")
    created_at: datetime
    updated_at: datetime


class AdminTenantPage(BaseModel):
    items: list[AdminTenant]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page")


class AdminTenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(
        min_length=1, max_length=63, description="1-63 lowercase letters, digits, inner hyphens"
    )
    name: Name
    industry: Industry | None = None
    size: Size | None = None
    admin_email: Email | None = Field(
        None, description="Invite this address as the tenant's first admin"
    )


class AdminTenantCreated(AdminTenant):
    invitation: InvitationCreated | None = Field(
        description="The admin's invitation when `admin_email` was given; its link is shown"
        " only here (and emailed when an SMTP server is configured)"
    )


class Suspension(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True, min_length=1, max_length=REASON_MAX, pattern=NO_NUL
        ),
        Field(description="Why; kept with the tenant and in its audit trail"),
    ]
