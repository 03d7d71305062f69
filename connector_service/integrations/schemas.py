from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class Status(StrEnum):
    pending = "pending"
    active = "active"
    error = "error"
    disabled = "disabled"


class IntegrationOut(BaseModel):
    id: uuid.UUID
    connector_name: str
    service_name: str
    marketplace_connector_id: uuid.UUID | None
    version: str | None
    status: Status
    status_reason: str | None
    last_error: str | None
    config: dict[str, Any]
    last_sync_at: datetime | None
    created_at: datetime
    updated_at: datetime


class IntegrationPage(BaseModel):
    items: list[IntegrationOut]
    next_cursor: str | None = None
