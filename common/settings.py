"""Settings shared by every service.

Each service has its own settings class with its own prefix (``SEEDOS_GATEWAY_`` ...) that
inherits these common fields. Common fields keep one environment name across all services
(``SEEDOS_INTERNAL_PUBLIC_KEYS``, ``DATABASE_URL`` without a prefix), so they carry explicit
aliases that ignore the subclass prefix; ``internal_signing_key`` has none on purpose, so each
service reads its own (``SEEDOS_GATEWAY_INTERNAL_SIGNING_KEY``, ...).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common import devsecrets, endpoints, service_keys

MIN_KEY_LENGTH = 32


def check_public_url(value: str) -> str:
    """``SEEDOS_PUBLIC_URL``, where browsers reach the gateway: an http(s) origin (the gateway
    serves at its root), without a trailing slash."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ValueError("SEEDOS_PUBLIC_URL must be an http(s) URL without a query")
    if parts.path.rstrip("/"):
        raise ValueError("SEEDOS_PUBLIC_URL is an origin: serve the gateway at its root")
    return value.rstrip("/")


class Environment(StrEnum):
    development = "development"
    production = "production"


def _env(name: str, default: Any, **constraints: Any) -> Any:
    """A field read from ``name`` whatever the subclass's prefix (or given by field name)."""
    return Field(default, validation_alias=name, **constraints)


class CommonSettings(BaseSettings):
    """Fields every service reads. Environment names are given per field."""

    model_config = SettingsConfigDict(
        env_prefix="SEEDOS_", extra="ignore", populate_by_name=True, frozen=True,
        hide_input_in_errors=True,  # a refusal must not print (the tail of) a secret
    )  # fmt: skip
    # the service these settings are for (its audience and issuer name); None: the CLI's
    service: ClassVar[str | None] = None

    env: Environment = _env("SEEDOS_ENV", Environment.development)
    database_url: SecretStr | None = _env("DATABASE_URL", None)
    data_dir: Path = _env("SEEDOS_DATA_DIR", Path(".seedos"))
    # Internal tokens (common/internal_auth.py): this service's Ed25519 private JWK, read with
    # the service's own prefix (SEEDOS_GATEWAY_INTERNAL_SIGNING_KEY ...), and every signing
    # service's public keys. Generated in development; `seedos keys generate` otherwise.
    internal_signing_key: SecretStr | None = None
    internal_public_keys: str | None = _env(service_keys.PUBLIC_KEYS_SETTING, None)
    internal_token_ttl_seconds: int = _env("SEEDOS_INTERNAL_TOKEN_TTL_SECONDS", 60, ge=5, le=600)
    internal_token_max_lifetime_seconds: int = _env(
        "SEEDOS_INTERNAL_TOKEN_MAX_LIFETIME_SECONDS", 300, ge=10, le=3600
    )
    # keys the fingerprints of idempotent requests (common/idempotency.py): its own secret, so
    # rotating signing keys leaves stored fingerprints valid
    idempotency_key: SecretStr | None = _env("SEEDOS_IDEMPOTENCY_KEY", None)
    # the shared HMAC key of earlier versions: refused, so that an upgrade does not run on it
    legacy_internal_token_key: SecretStr | None = _env("SEEDOS_INTERNAL_TOKEN_KEY", None)
    log_level: str = _env(
        "SEEDOS_LOG_LEVEL", "INFO", pattern="(?i)^(debug|info|warning|error|critical)$"
    )
    log_format: str = _env("SEEDOS_LOG_FORMAT", "auto", pattern="^(auto|json|console)$")
    db_pool_max_size: int = _env("SEEDOS_DB_POOL_MAX_SIZE", 10, ge=1)
    db_connect_timeout_seconds: float = _env("SEEDOS_DB_CONNECT_TIMEOUT_SECONDS", 5.0, gt=0)
    db_acquire_timeout_seconds: float = _env("SEEDOS_DB_ACQUIRE_TIMEOUT_SECONDS", 5.0, gt=0)
    db_command_timeout_seconds: float = _env("SEEDOS_DB_COMMAND_TIMEOUT_SECONDS", 10.0, gt=0)
    # Where connector services run; unset: endpoints.DEFAULT_ALLOWED in development, and
    # endpoints.DEFAULT_ALLOWED_PRODUCTION (no loopback) in production.
    endpoint_allowed_networks: str | None = _env(endpoints.CONNECTOR_SETTING, None)
    # Calls to the outside world (OAuth token and revocation URLs): public addresses only
    # unless more is listed, in every mode.
    egress_allowed_networks: str = _env(endpoints.EGRESS_SETTING, endpoints.DEFAULT_EGRESS)

    @field_validator("endpoint_allowed_networks", "egress_allowed_networks")
    @classmethod
    def _networks(cls, value: str | None) -> str | None:
        if value is not None:
            endpoints.parse_networks(value)  # a bad entry is a ValueError, reported by pydantic
        return value

    @model_validator(mode="after")
    def _connector_networks(self) -> Self:
        if self.endpoint_allowed_networks is None:
            default = (
                endpoints.DEFAULT_ALLOWED
                if self.env is Environment.development
                else endpoints.DEFAULT_ALLOWED_PRODUCTION
            )
            object.__setattr__(self, "endpoint_allowed_networks", default)
        return self

    def endpoint_policy(self) -> endpoints.EndpointPolicy:
        """The connector rule: where connector endpoint URLs may lead (common/endpoints.py)."""
        assert self.endpoint_allowed_networks is not None  # set by _connector_networks
        networks = endpoints.parse_networks(self.endpoint_allowed_networks)
        return endpoints.EndpointPolicy(
            networks, name="connector", setting=endpoints.CONNECTOR_SETTING
        )

    def egress_policy(self) -> endpoints.EndpointPolicy:
        """The egress rule: where calls to the outside world (OAuth token and revocation URLs)
        may lead (common/endpoints.py)."""
        networks = endpoints.parse_networks(self.egress_allowed_networks)
        return endpoints.EndpointPolicy(networks, name="egress", setting=endpoints.EGRESS_SETTING)

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        if self.legacy_internal_token_key is not None:
            raise ValueError(
                "SEEDOS_INTERNAL_TOKEN_KEY is no longer used: each service signs with its own key"
                " (run `seedos keys generate`, README 'Internal tokens')"
            )
        if self.internal_token_ttl_seconds > self.internal_token_max_lifetime_seconds:
            raise ValueError("SEEDOS_INTERNAL_TOKEN_TTL_SECONDS exceeds the maximum lifetime")
        if self.env is Environment.development:
            self._development_secrets()
        # what is given must be usable; what a service needs is required when it starts
        # (require_service_secrets), so that the CLI runs without any service's keys
        if self.internal_signing_key is not None and self.service is not None:
            self.signing_key()
        if self.internal_public_keys is not None:
            self.public_keys()
        if self.idempotency_key is not None:
            value = self.idempotency_key.get_secret_value()
            if len(value) < MIN_KEY_LENGTH or value in devsecrets.KNOWN_WEAK:
                raise ValueError(
                    "SEEDOS_IDEMPOTENCY_KEY must be a random value of at least"
                    f" {MIN_KEY_LENGTH} characters"
                )
        return self

    def _development_secrets(self) -> None:
        """Fill what is unset from the git-ignored development secrets file."""
        generated = devsecrets.load_or_create(self.data_dir)
        private = devsecrets.signing_keys(generated)
        if self.internal_signing_key is None and self.service in private:
            object.__setattr__(self, "internal_signing_key", SecretStr(private[self.service]))
        if self.internal_public_keys is None:
            public = service_keys.PublicKeys.of(
                {name: [service_keys.load_signing_key(jwk, service=name)]
                 for name, jwk in private.items()}
            )  # fmt: skip
            object.__setattr__(self, "internal_public_keys", public.to_json())
        if self.idempotency_key is None:
            object.__setattr__(self, "idempotency_key", SecretStr(generated["idempotency_key"]))

    def require_service_secrets(self, *, signs: bool, verifies: bool) -> None:
        """Refuses to start a service without the secrets it needs (outside development,
        where they are generated): its signing key, the public keys, the idempotency key."""
        missing = []
        if signs and self.internal_signing_key is None:
            assert self.service is not None
            missing.append(service_keys.signing_setting(self.service))
        if verifies and self.internal_public_keys is None:
            missing.append(service_keys.PUBLIC_KEYS_SETTING)
        if verifies and self.idempotency_key is None:  # the services behind the gateway
            missing.append("SEEDOS_IDEMPOTENCY_KEY")
        if missing:
            raise ValueError(
                f"{', '.join(missing)} required outside development mode: `seedos keys generate`"
                " makes them (README, 'Internal tokens')"
            )

    def signing_key(self):  # -> joserfc OKPKey
        """This service's private key for internal tokens."""
        assert self.service is not None
        if self.internal_signing_key is None:
            self.require_service_secrets(signs=True, verifies=False)
        assert self.internal_signing_key is not None
        value = self.internal_signing_key.get_secret_value()
        return service_keys.load_signing_key(value, service=self.service)

    def public_keys(self) -> service_keys.PublicKeys:
        """The signing services' public keys (``SEEDOS_INTERNAL_PUBLIC_KEYS``)."""
        return service_keys.PublicKeys.parse(self.internal_public_keys or "{}")

    @property
    def dsn(self) -> str | None:
        return self.database_url.get_secret_value() if self.database_url else None
