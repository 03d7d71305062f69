from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from common.settings import CommonSettings


class ConnectorServiceSettings(CommonSettings):
    """connector_service settings, environment prefix ``SEEDOS_CONNECTOR_``."""

    model_config = SettingsConfigDict(
        env_prefix="SEEDOS_CONNECTOR_", extra="ignore", populate_by_name=True, frozen=True
    )
