from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class Reason(BaseModel):
    kind: Literal["segment", "co_installed", "description", "featured", "health"]
    text: str = Field(description="For people: why this connector is (or is less) recommended")
    weight: float = Field(
        description="What this part added to the score's log-odds (the log of the estimate"
        " before it is squashed into 0-1); negative: it demoted it"
    )
    rate: float | None = Field(None, description="segment: the smoothed install rate")
    tenants: int | None = Field(None, description="segment: how many tenants it covers")
    with_connector: str | None = Field(
        None, description="co_installed: the installed connector that counted most"
    )
    with_connectors: list[str] | None = Field(
        None, description="co_installed: every installed connector that counted, strongest first"
    )


class Recommendation(BaseModel):
    slug: str
    name: str
    category: str | None
    vendor: str | None
    logo_url: str | None
    is_featured: bool
    verification: Literal["verified", "checked", "described"] | None = Field(
        None, description="How far the entry is known to work (the catalog's levels)"
    )
    score: float = Field(
        description="Ranking score in (0, 1), higher is better: the next-install estimate"
        " times the description, featured and health factors, squashed; not a probability"
    )
    reason: str = Field(description="The main reason, the first of `reasons`")
    reasons: list[Reason]


class ProfileUsed(BaseModel):
    industry: str | None
    size_band: str | None
    description_used: bool = Field(description="Whether the description matched any entry")
    installed: int = Field(description="Connectors the tenant has installed (never recommended)")


class Recommendations(BaseModel):
    items: list[Recommendation]
    profile: ProfileUsed
    as_of: datetime = Field(description="When the shared statistics were last rebuilt")
