from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

AuthScheme = Literal["oauth2", "api_key", "basic", "none"]


class CatalogEntry(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    description: str | None
    service_identifier: str
    version: str
    category: str | None
    vendor: str | None
    auth_scheme: AuthScheme
    available_scopes: list[str]
    logo_url: str | None
    setup_guide_url: str | None
    is_featured: bool
    allow_multiple: bool
    deployed: bool
    created_at: datetime
    updated_at: datetime


class CatalogEntryDetail(CatalogEntry):
    manifest: dict[str, Any]
    default_auth_config: dict[str, Any]


class CatalogPage(BaseModel):
    items: list[CatalogEntry]
    next_cursor: str | None = None
