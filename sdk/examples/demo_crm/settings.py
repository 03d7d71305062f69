"""Settings of the demo CRM, read from ``DEMO_CRM_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration of one demo CRM process.

    Attributes:
        data_dir: folder holding ``demo_crm.sqlite3``; relative paths resolve against the
            working directory.
        api_keys: accepted API keys (``DEMO_CRM_API_KEYS`` is comma-separated).
        introspection_url: RFC 7662 token introspection endpoint; without it only API keys work.
        introspection_client_id: client id the CRM authenticates with at introspection.
        introspection_client_secret: its secret (HTTP Basic).
        required_scope: a scope every introspected token must carry, if set.
        introspection_cache_seconds: how long an active introspection result is reused (≤ 30).
        introspection_timeout: seconds before an unanswered introspection call gives 503.
    """

    model_config = SettingsConfigDict(env_prefix="DEMO_CRM_", extra="ignore")

    data_dir: Path = Path(".seedos/demo_crm")
    api_keys: Annotated[tuple[str, ...], NoDecode] = ("demo-crm-key",)
    introspection_url: str | None = None
    introspection_client_id: str | None = None
    introspection_client_secret: SecretStr | None = None
    required_scope: str | None = None
    introspection_cache_seconds: float = 30.0
    introspection_timeout: float = 5.0

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(key.strip() for key in value.split(",") if key.strip())
        return value

    @field_validator("introspection_cache_seconds")
    @classmethod
    def _cap_cache(cls, value: float) -> float:
        return max(0.0, min(value, 30.0))

    @property
    def database_path(self) -> Path:
        return self.data_dir / "demo_crm.sqlite3"


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
