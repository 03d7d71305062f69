"""Settings shared by every service.

Each service has its own settings class with its own prefix (``SEEDOS_GATEWAY_`` ...) that
inherits these common fields. Common fields keep one environment name across all services
(``SEEDOS_INTERNAL_TOKEN_KEY``, ``DATABASE_URL`` without a prefix), so they carry explicit
aliases that ignore the subclass prefix.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common import devsecrets

MIN_KEY_LENGTH = 32


class Environment(StrEnum):
    development = "development"
    production = "production"


def _alias(name: str) -> Any:
    return Field(validation_alias=AliasChoices(name, name.lower()))


class CommonSettings(BaseSettings):
    """Fields every service reads. Environment names are given per field."""

    model_config = SettingsConfigDict(
        env_prefix="SEEDOS_", extra="ignore", populate_by_name=True, frozen=True
    )

    env: Environment = Field(
        Environment.development, validation_alias=AliasChoices("SEEDOS_ENV", "env")
    )
    database_url: SecretStr | None = Field(
        None, validation_alias=AliasChoices("DATABASE_URL", "database_url")
    )
    data_dir: Path = Field(
        Path(".seedos"), validation_alias=AliasChoices("SEEDOS_DATA_DIR", "data_dir")
    )
    internal_token_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SEEDOS_INTERNAL_TOKEN_KEY", "internal_token_key")
    )
    internal_token_ttl_seconds: int = Field(
        60,
        ge=5,
        le=600,
        validation_alias=AliasChoices(
            "SEEDOS_INTERNAL_TOKEN_TTL_SECONDS", "internal_token_ttl_seconds"
        ),
    )
    log_level: str = Field("INFO", validation_alias=AliasChoices("SEEDOS_LOG_LEVEL", "log_level"))
    log_format: str = Field(
        "auto",
        pattern="^(auto|json|console)$",
        validation_alias=AliasChoices("SEEDOS_LOG_FORMAT", "log_format"),
    )
    db_pool_min_size: int = Field(
        1, ge=0, validation_alias=AliasChoices("SEEDOS_DB_POOL_MIN_SIZE", "db_pool_min_size")
    )
    db_pool_max_size: int = Field(
        10, ge=1, validation_alias=AliasChoices("SEEDOS_DB_POOL_MAX_SIZE", "db_pool_max_size")
    )
    db_connect_timeout_seconds: float = Field(
        5.0,
        gt=0,
        validation_alias=AliasChoices(
            "SEEDOS_DB_CONNECT_TIMEOUT_SECONDS", "db_connect_timeout_seconds"
        ),
    )
    db_command_timeout_seconds: float = Field(
        10.0,
        gt=0,
        validation_alias=AliasChoices(
            "SEEDOS_DB_COMMAND_TIMEOUT_SECONDS", "db_command_timeout_seconds"
        ),
    )

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        if self.internal_token_key is None and self.env is Environment.development:
            generated = devsecrets.load_or_create(self.data_dir)["internal_token_key"]
            object.__setattr__(self, "internal_token_key", SecretStr(generated))
        key = self.internal_token_key
        if key is None:
            raise ValueError("SEEDOS_INTERNAL_TOKEN_KEY is required outside development mode")
        value = key.get_secret_value()
        if len(value) < MIN_KEY_LENGTH or value in devsecrets.KNOWN_WEAK:
            raise ValueError(
                "SEEDOS_INTERNAL_TOKEN_KEY must be a random value of at least"
                f" {MIN_KEY_LENGTH} characters"
            )
        return self

    @property
    def dsn(self) -> str | None:
        return self.database_url.get_secret_value() if self.database_url else None
