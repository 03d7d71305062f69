from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from common.roles import Role


class MemberOut(BaseModel):
    user_id: uuid.UUID
    email: str | None = Field(description="The email the person's provider asserted last")
    email_verified: bool = Field(description="Whether the provider said it verified the email")
    name: str | None = Field(description="The name the provider gave")
    role: Role
    joined_at: datetime
    added_by: str | None = Field(
        description="How they joined: `user:<id>` or `apikey:<id>` (added by), "
        "`invitation:<id>`, `domain:<domain>`, `system:cli`"
    )
    last_sign_in_at: datetime | None


class MemberChanged(MemberOut):
    revoked_api_keys: int = Field(
        description="How many API keys the member made were revoked: all of them on removal, "
        "those granting more than the new role on a role change"
    )
    revoked_invitations: int = Field(
        description="How many pending invitations the member (or their keys) made were "
        "revoked: all of them on removal, those inviting beyond the new role on a role change"
    )


class MemberPage(BaseModel):
    items: list[MemberOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page")


class MemberUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role = Field(description="The new role; no higher than the caller's own")
