from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import CommonSettings


class GatewaySettings(CommonSettings):
    """Gateway settings, environment prefix ``SEEDOS_GATEWAY_``."""

    model_config = SettingsConfigDict(
        env_prefix="SEEDOS_GATEWAY_", extra="ignore", populate_by_name=True, frozen=True
    )

    connector_service_url: str = "http://127.0.0.1:8001"
    marketplace_service_url: str = "http://127.0.0.1:8002"
    upstream_timeout_seconds: float = Field(10.0, gt=0)
    upstream_connect_timeout_seconds: float = Field(2.0, gt=0)
    upstream_max_connections: int = Field(200, ge=1)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    # arrays and objects inside one another in a JSON body of the gateway's own routes
    max_json_depth: int = Field(32, ge=2, le=256)
    api_key_cache_ttl_seconds: float = Field(2.0, ge=0, le=4)
    api_key_cache_size: int = Field(10_000, ge=1)
    # how often an open WebSocket's API key is checked again (a revoked key's socket is closed)
    ws_recheck_seconds: float = Field(5.0, gt=0, le=60)
    openapi_cache_seconds: float = Field(30.0, ge=0)
