from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import CommonSettings


class MarketplaceSettings(CommonSettings):
    """marketplace_service settings, environment prefix ``SEEDOS_MARKETPLACE_``."""

    model_config = SettingsConfigDict(
        env_prefix="SEEDOS_MARKETPLACE_", extra="ignore", populate_by_name=True, frozen=True
    )

    catalog_refresh_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="How often installs per entry and the title vocabulary are counted again",
    )
