from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manifest: dict[str, Any] = Field(description="The connector's manifest (its GET /manifest)")
    endpoint_url: str = Field(max_length=2000, description="Where the deployed connector listens")
    category: str | None = Field(
        None, max_length=50, pattern=r"^[a-z0-9-]+$", description="Category (kept if absent)"
    )
    vendor: str | None = Field(None, min_length=1, max_length=200)
    logo_url: str | None = Field(None, max_length=2000, pattern=r"^https?://")
    setup_guide_url: str | None = Field(None, max_length=2000, pattern=r"^https?://")
    setup_steps: list[Annotated[str, Field(min_length=1, max_length=500)]] | None = Field(
        None, max_length=20, description="What a person does to set it up, in order"
    )
