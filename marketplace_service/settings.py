from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from common.settings import CommonSettings


class MarketplaceSettings(CommonSettings):
    """marketplace_service settings, environment prefix ``SEEDOS_MARKETPLACE_``."""

    model_config = SettingsConfigDict(
        env_prefix="SEEDOS_MARKETPLACE_", extra="ignore", populate_by_name=True, frozen=True
    )
