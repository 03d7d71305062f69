from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class AuditLogOut(BaseModel):
    id: int
    seq: int = Field(description="Position in the tenant's chain: 1, 2, 3, ... without gaps")
    actor: str | None = Field(description="Who acted: `apikey:<id>`, or `system:<tool>`")
    action: str = Field(examples=["integration.created"])
    target: str | None = Field(
        description="What the action is about, e.g. `integration:<id>`", examples=["api_key:…"]
    )
    payload: dict[str, Any] = Field(description="Details of the action; never secrets")
    request_id: str | None
    created_at: datetime
    prev_hash: str | None = Field(description="SHA-256 of the previous entry (hex)")
    hash: str = Field(description="SHA-256 of the previous hash and this entry (hex)")


class AuditLogPage(BaseModel):
    items: list[AuditLogOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page")
