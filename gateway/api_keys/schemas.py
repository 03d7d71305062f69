from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from common.roles import Role


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: Role = Role.editor
    expires_at: AwareDatetime | None = Field(
        None, description="When the key stops working (with a time zone)"
    )


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    name: str
    role: Role
    prefix: str
    purpose: str
    created_by: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret key. Shown only in this response: store it now.")


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]
    next_cursor: str | None = Field(None, description="Always null: a tenant's keys fit one page")
