from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path
from typing import ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from common.settings import CommonSettings, Environment, check_public_url
from gateway import tls
from gateway.limits.config import RateLimitSettings
from gateway.tenants.service import SLUG, looks_like_id

DEVELOPMENT_PROVIDER = "development"


class OidcProviderSettings(BaseModel):
    """One OpenID provider people sign in with (discovered from its issuer URL).

    ``tenants`` names the tenants (by slug) whose SSO this provider is: ``/auth/login?tenant=``
    and those tenants' registered email domains choose it. Without ``tenants`` it is a platform
    provider, used when nothing chooses another. ``operators`` lists the subjects of this
    provider who are platform operators."""

    model_config = {"frozen": True, "extra": "forbid"}

    issuer: str
    client_id: str = Field(min_length=1, max_length=255)
    client_secret: SecretStr | None = None  # none: a public client (PKCE alone)
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    display_name: str | None = Field(None, max_length=80)
    tenants: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        # exactly as the provider writes it (some end in '/'): tokens must match
        return _provider_url(value, what="an issuer")

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "openid" not in value:
            raise ValueError("scopes must include openid")
        return value


class SmtpSettings(BaseModel):
    model_config = {"frozen": True, "extra": "forbid"}

    host: str
    port: int = Field(587, ge=1, le=65535)
    sender: str = Field(min_length=3)  # the From address
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = True
    timeout_seconds: float = Field(10.0, gt=0, le=60)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _provider_url(value: str, *, what: str) -> str:
    """``value`` unchanged if it is an http(s) URL without a query, https unless on loopback."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ValueError(f"{what} is an http(s) URL without a query")
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        raise ValueError(f"{what} must use https (plain http only on loopback)")
    return value


def _check_name(name: str, *, what: str) -> None:
    if not 1 <= len(name) <= 40 or not name.replace("-", "").isalnum():
        raise ValueError(f"{what} {name!r}: 1-40 letters, digits and hyphens")


# Asymmetric JWS algorithms: a token signed with anything else (HS256 but with a configured
# secret, or none) is refused.
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
                         "ES512", "EdDSA")  # fmt: skip


class JwtIssuerSettings(BaseModel):
    """One issuer whose access tokens are accepted as ``Authorization: Bearer <JWT>``.

    ``kind`` "supabase" (Supabase Auth: keys at ``<issuer>/.well-known/jwks.json``, audience
    ``authenticated``, tenant and role from ``app_metadata``) or "oidc" (keys from the issuer's
    discovery unless ``jwks_uri`` is given). ``mode`` "directory": the caller is the person
    with this (issuer, subject) among our users, acting by their membership; "authoritative":
    tenant and role are the token's ``tenant_claim`` and ``role_claim``."""

    model_config = {"frozen": True, "extra": "forbid"}

    kind: Literal["supabase", "oidc"]
    issuer: str
    audience: str | None = Field(None, min_length=1, max_length=255)
    jwks_uri: str | None = None
    algorithms: tuple[str, ...] | None = None  # None: the kind's asymmetric ones (+HS256)
    hs256_secret: SecretStr | None = None  # Supabase's legacy JWT secret
    mode: Literal["directory", "authoritative"] = "directory"
    tenant_claim: str | None = Field(None, max_length=200)
    role_claim: str | None = Field(None, max_length=200)
    tenants: tuple[str, ...] = ()  # the tenants (slugs) an authoritative issuer may speak for
    leeway_seconds: int = Field(30, ge=0, le=60)

    @field_validator("issuer", "jwks_uri")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # exactly as written: tokens' iss must match it
        return _provider_url(value, what="an issuer or JWKS URI")

    @field_validator("tenants")
    @classmethod
    def _tenant_slugs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for slug in value:  # slugs, never ids: a listed id would never match
            if not SLUG.match(slug) or looks_like_id(slug):
                raise ValueError(f"tenants: {slug!r} is not a tenant slug")
        return value

    @model_validator(mode="after")
    def _rules(self) -> Self:
        supabase = self.kind == "supabase"
        if self.hs256_secret is not None:
            if not supabase:
                raise ValueError("hs256_secret (Supabase's legacy JWT secret) is for kind supabase")
            if len(self.hs256_secret.get_secret_value()) < 32:
                raise ValueError("hs256_secret: Supabase's JWT secret has at least 32 characters")
        for alg in self.algorithms or ():
            if alg == "HS256" and self.hs256_secret is None:
                raise ValueError("HS256 is accepted only with an explicit hs256_secret")
            if alg != "HS256" and alg not in ASYMMETRIC_ALGORITHMS:
                raise ValueError(f"algorithm {alg!r} is not accepted (none never is)")
        if self.algorithms is not None and not self.algorithms:
            raise ValueError("algorithms: at least one")
        for path in (self.tenant_claim, self.role_claim):
            if path is not None and (not all(path.split(".")) or path.startswith("user_metadata")):
                raise ValueError(f"claim path {path!r}: dotted names, never into user_metadata")
        if not supabase and self.audience is None:
            raise ValueError("an oidc issuer names the audience its tokens must be for")
        explicit = self.tenant_claim and self.role_claim
        if self.mode == "authoritative" and not supabase and not explicit:
            raise ValueError("an authoritative oidc issuer names tenant_claim and role_claim")
        if supabase and self.role_claim == "role":
            raise ValueError("Supabase's top-level 'role' is the Postgres role: use app_metadata")
        return self

    @property
    def allowed_algorithms(self) -> tuple[str, ...]:
        if self.algorithms is not None:
            return self.algorithms
        if self.kind == "supabase":  # Supabase signs with ES256 (its default) or RS256
            return ("ES256", "RS256") + (("HS256",) if self.hs256_secret else ())
        return ASYMMETRIC_ALGORITHMS

    @property
    def expected_audience(self) -> str:
        return self.audience or "authenticated"  # Supabase's; an oidc issuer names one

    @property
    def keys_url(self) -> str | None:
        """Where the keys are; None: the issuer's discovery says (oidc)."""
        if self.jwks_uri or self.kind != "supabase":
            return self.jwks_uri
        return self.issuer.rstrip("/") + "/.well-known/jwks.json"

    @property
    def claims(self) -> tuple[str, str]:
        """The dotted paths of the tenant and role claims (authoritative mode)."""
        tenant = self.tenant_claim or "app_metadata.tenant_id"
        return tenant, self.role_claim or "app_metadata.role"


class GatewaySettings(CommonSettings):
    """Gateway settings, environment prefix ``SEEDOS_GATEWAY_``."""

    model_config = SettingsConfigDict(
        env_prefix="SEEDOS_GATEWAY_",
        extra="ignore",
        populate_by_name=True,
        frozen=True,
        env_ignore_empty=True,  # docker-compose passes unset optional settings as ""
        hide_input_in_errors=True,  # a refused setting may hold a secret (hs256_secret ...)
    )
    service: ClassVar[str | None] = "gateway"

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
    # how often an open WebSocket's credentials are checked again: a revoked key's or an ended
    # session's socket is closed (with the cache above, within 5 s)
    ws_recheck_seconds: float = Field(2.0, gt=0, le=60)
    openapi_cache_seconds: float = Field(30.0, ge=0)

    # Where browsers reach the gateway (the same variable connector_service reads): redirect
    # URIs, the origin CSRF checks compare with, and whether responses carry HSTS.
    public_url: str = Field("http://127.0.0.1:8000", validation_alias="SEEDOS_PUBLIC_URL")
    # People: providers by name, as JSON ({"platform": {"issuer": ..., "client_id": ...}}).
    oidc_providers: dict[str, OidcProviderSettings] = Field(default_factory=dict)
    oidc_timeout_seconds: float = Field(10.0, gt=0, le=60)
    # Bearer JWTs from identity providers, as JSON by name ({"supabase": {"kind": ...}}), and
    # the time a fetch of their keys may take (then 503)
    jwt_issuers: dict[str, JwtIssuerSettings] = Field(default_factory=dict)
    jwt_timeout_seconds: float = Field(3.0, gt=0, le=30)
    # "Continue as the demo admin" without a provider: development mode only.
    dev_sign_in: bool | None = None
    session_idle_minutes: float = Field(30.0, gt=0, le=24 * 60)
    session_absolute_hours: float = Field(12.0, gt=0, le=24 * 30)
    # how long a sign-in may take at the provider
    login_flow_minutes: float = Field(10.0, gt=0, le=60)
    invitation_days: float = Field(7.0, gt=0, le=30)
    smtp: SmtpSettings | None = None
    # Origins (scheme://host[:port]) allowed to call the API from a browser page of theirs.
    cors_origins: tuple[str, ...] = ()
    # sign-in, callback and invitation acceptance, per client address
    auth_rate_per_minute: int = Field(30, ge=1, le=10_000)
    # Rate limits of /api/v1/** (gateway/limits): per tenant and per credential, by role, with
    # overrides by tenant slug, as JSON; in this process, or in Redis shared by every replica.
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    rate_limit_redis_url: SecretStr | None = Field(
        None, validation_alias="SEEDOS_RATE_LIMIT_REDIS_URL"
    )
    # proxied requests and WebSockets one tenant may have in flight in this process at once
    tenant_max_concurrent: int = Field(100, ge=1, le=100_000)

    # HTTPS served by the gateway itself (python -m gateway.serve), TLS 1.3 only: the PEM files
    # of its certificate (then any intermediates) and of its key, both or neither, and the key's
    # password if it is encrypted. With them, SEEDOS_PUBLIC_URL is https.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_key_password: SecretStr | None = None

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        return check_public_url(value)

    @model_validator(mode="after")
    def _tls(self) -> Self:
        if self.tls_cert_file is None and self.tls_key_file is None:
            if self.tls_key_password is not None:
                raise ValueError(f"{tls.PASSWORD_SETTING} without a key: set {tls.KEY_SETTING}")
            return self
        if self.tls_cert_file is None or self.tls_key_file is None:
            raise ValueError(f"set both {tls.CERT_SETTING} and {tls.KEY_SETTING}, or neither")
        if urlsplit(self.public_url).scheme != "https":
            raise ValueError(
                f"the gateway serves HTTPS ({tls.CERT_SETTING} is set):"
                f" SEEDOS_PUBLIC_URL must be https, not {self.public_url}"
            )
        self.tls_context()  # the files load, or a ValueError names the setting at fault
        return self

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS 1.3-only server context of the configured files; None: plain HTTP."""
        if self.tls_cert_file is None or self.tls_key_file is None:
            return None
        password = self.tls_key_password
        return tls.server_context(
            cert_file=self.tls_cert_file,
            key_file=self.tls_key_file,
            password=password.get_secret_value() if password is not None else None,
        )

    @field_validator("rate_limit_redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme
            if scheme not in ("redis", "rediss", "unix"):
                raise ValueError("SEEDOS_RATE_LIMIT_REDIS_URL: a redis, rediss or unix URL")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ValueError(f"a CORS origin is scheme://host[:port], not {origin!r}")
        return value

    @model_validator(mode="after")
    def _people(self) -> Self:
        development = self.env is Environment.development
        parts = urlsplit(self.public_url)
        loopback = is_loopback(parts.hostname or "")
        if self.dev_sign_in is None:  # on by default only for a laptop: development, loopback
            object.__setattr__(self, "dev_sign_in", development and loopback)
        if self.dev_sign_in and not development:
            raise ValueError("SEEDOS_GATEWAY_DEV_SIGN_IN is refused outside development mode")
        if DEVELOPMENT_PROVIDER in self.oidc_providers:
            raise ValueError(f"'{DEVELOPMENT_PROVIDER}' is reserved: name the provider otherwise")
        if not development and parts.scheme == "http" and not loopback:
            # browsers keep Secure cookies over plain HTTP on loopback only
            raise ValueError("SEEDOS_PUBLIC_URL must use https outside development (or loopback)")
        for name, provider in self.oidc_providers.items():
            _check_name(name, what="provider name")
            claimed = [p for p, other in self.oidc_providers.items() if p != name
                       and set(other.tenants) & set(provider.tenants)]  # fmt: skip
            if claimed:
                raise ValueError(f"providers {name} and {claimed[0]} claim the same tenant")
        return self

    @model_validator(mode="after")
    def _jwt_issuers(self) -> Self:
        seen: dict[str, str] = {}
        for name, issuer in self.jwt_issuers.items():
            _check_name(name, what="JWT issuer name")
            if issuer.issuer in seen:
                raise ValueError(f"JWT issuers {seen[issuer.issuer]} and {name} share an issuer")
            seen[issuer.issuer] = name
        return self

    @property
    def public_origin(self) -> str:
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}".lower()

    @property
    def session_idle_seconds(self) -> float:
        return self.session_idle_minutes * 60

    @property
    def session_absolute_seconds(self) -> float:
        return self.session_absolute_hours * 3600
