from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from marketplace_service.publishing.manifest import storable


def _storable(text: str) -> str:
    if not storable(text):
        raise ValueError("text with a NUL character or a lone surrogate cannot be stored")
    return text


# PostgreSQL text cannot hold NUL or a lone surrogate (both valid in JSON): 422 here, not a 500
Text = Annotated[str, AfterValidator(_storable)]


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manifest: dict[str, Any] = Field(description="The connector's manifest (its GET /manifest)")
    endpoint_url: Text = Field(max_length=2000, description="Where the deployed connector listens")
    category: str | None = Field(
        None, max_length=50, pattern=r"^[a-z0-9-]+$", description="Category (kept if absent)"
    )
    vendor: Text | None = Field(None, min_length=1, max_length=200)
    logo_url: Text | None = Field(None, max_length=2000, pattern=r"^https?://")
    setup_guide_url: Text | None = Field(None, max_length=2000, pattern=r"^https?://")
    setup_steps: list[Annotated[Text, Field(min_length=1, max_length=500)]] | None = Field(
        None, max_length=20, description="What a person does to set it up, in order"
    )
