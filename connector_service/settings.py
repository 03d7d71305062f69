from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from common import credential_keys
from common.settings import CommonSettings


class ConnectorServiceSettings(CommonSettings):
    """connector_service settings, environment prefix ``SEEDOS_CONNECTOR_``, plus the credential
    key ring (``SEEDOS_CREDENTIAL_KEYS`` or ``SEEDOS_CREDENTIAL_KEY_FILE``), required outside
    development mode."""

    model_config = SettingsConfigDict(
        env_prefix="SEEDOS_CONNECTOR_", extra="ignore", populate_by_name=True, frozen=True
    )

    credential_keys: SecretStr | None = Field(None, validation_alias="SEEDOS_CREDENTIAL_KEYS")
    credential_key_file: Path | None = Field(None, validation_alias="SEEDOS_CREDENTIAL_KEY_FILE")

    @model_validator(mode="after")
    def _key_ring(self) -> Self:
        try:
            self.key_source()
        except credential_keys.KeySourceError as exc:
            raise ValueError(str(exc)) from None
        return self

    def key_source(self) -> credential_keys.KeySource:
        return credential_keys.load(
            self, keys=self.credential_keys, key_file=self.credential_key_file
        )
