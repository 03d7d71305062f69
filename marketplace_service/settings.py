from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import CommonSettings


class MarketplaceSettings(CommonSettings):
    """marketplace_service settings, environment prefix ``SEEDOS_MARKETPLACE_``."""

    model_config = SettingsConfigDict(
        env_prefix="SEEDOS_MARKETPLACE_", extra="ignore", populate_by_name=True, frozen=True
    )
    service: ClassVar[str | None] = "marketplace_service"

    # where connector_service listens (install and uninstall go through it)
    connector_service_url: str = "http://127.0.0.1:8001"
    # where the generic connector listens: a published definition's catalog entry points there,
    # at /definitions/{name}/{version}/{digest}
    generic_connector_url: str = "http://127.0.0.1:8013"
    connector_service_timeout_seconds: float = Field(9.0, gt=0, le=120)
    recommendations_refresh_seconds: float = Field(
        60.0,
        ge=0.1,
        description="How often the statistics recommendations share are rebuilt (a tenant's own"
        " installs and profile are read on every request)",
    )
    recommendations_health_window_seconds: int = Field(
        7 * 86400,
        ge=60,
        description="How far back connector_service's call rollups count for connector health",
    )
    catalog_refresh_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="How often installs per entry and the title vocabulary are counted again",
    )
