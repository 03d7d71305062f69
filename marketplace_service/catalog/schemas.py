from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

AuthScheme = Literal["oauth2", "api_key", "basic", "none"]
# How far an entry is known to work (marketplace_service/catalog/definitions.py says how each
# level is earned); None: not rated (a tenant's connector, a hand-written one, a brochure).
Verification = Literal["verified", "checked", "described"]
VERIFICATION_HELP = (
    "How far it is known to work: `verified` (passes the conformance suite against a stand-in"
    " of the provider no one here wrote), `checked` (its requests and answers checked against"
    " the provider's own machine-readable API description), `described` (written from the"
    " provider's documentation only); null: not rated"
)


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
    installs: int = Field(0, description="Installs across all tenants (popularity)")
    installed: bool = Field(False, description="Whether the caller's tenant has it installed")
    update_available: bool = Field(
        False, description="Whether one of the caller's installs has an older version"
    )
    published_at: datetime | None = None
    verification: Verification | None = Field(None, description=VERIFICATION_HELP)
    verification_note: str | None = Field(
        None,
        description="What the level rests on (the stand-in, the description), or why the entry"
        " cannot run from a definition",
    )
    created_at: datetime
    updated_at: datetime


class SearchHit(CatalogEntry):
    match: Literal["text", "typo"] | None = Field(
        None, description="With q: a full-text (or prefix) match, or a typo-tolerant one"
    )
    score: float | None = Field(None, description="Relevance of a text match (higher first)")


class TenantInstall(BaseModel):
    id: uuid.UUID
    connector_name: str
    version: str | None
    status: str
    update_available: bool


class CatalogEntryDetail(CatalogEntry):
    manifest: dict[str, Any]
    default_auth_config: dict[str, Any]
    config_schema: dict[str, Any] = Field(description="JSON Schema of an install's config")
    setup_steps: list[str]
    tenant_installs: list[TenantInstall] = Field(
        description="The caller's installs of this entry, each with its version"
    )
    published_by_you: bool = Field(description="Whether the caller's tenant published it")


class CatalogPage(BaseModel):
    items: list[SearchHit]
    next_cursor: str | None = None
    category_counts: dict[str, int] = Field(
        default_factory=dict,
        description="Matching entries per category under every filter but the category",
    )
