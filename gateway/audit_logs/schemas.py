from __future__ import annotations

from dataclasses import asdict, dataclass
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


@dataclass(frozen=True)
class Filters:
    """What narrows the trail (the list's and the export's query); every one given must match."""

    action: str | None = None
    action_prefix: str | None = None
    actor: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def given(self) -> dict[str, str]:
        """The filters given, as text (for the audit entry of an export)."""
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in asdict(self).items()
            if value is not None
        }
