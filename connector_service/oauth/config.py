"""The platform's OAuth configuration as the flow uses it: clients per catalog entry, the
redirect URI on the public URL, timeouts, and the egress rule its requests to providers go
through. Built from the service's settings only (``create_app(settings)``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from common.endpoints import EndpointPolicy
from connector_service.settings import ConnectorServiceSettings

CALLBACK_PATH = "/api/v1/integrations/oauth/callback"
REFRESH_MARGIN_SECONDS = 60.0  # a token expiring sooner than this is refreshed before use


@dataclass(frozen=True)
class Client:
    """An OAuth client (app) registered at a provider."""

    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class OAuthConfig:
    public_url: str
    policy: EndpointPolicy  # the egress rule (SEEDOS_EGRESS_ALLOWED_NETWORKS): token, revoke URLs
    clients: Mapping[str, Client] = field(default_factory=dict, repr=False)  # by catalog slug
    timeout: float = 10.0
    revoke_timeout: float = 3.0
    refresh_margin: float = REFRESH_MARGIN_SECONDS

    @property
    def redirect_uri(self) -> str:
        return self.public_url.rstrip("/") + CALLBACK_PATH

    @classmethod
    def from_settings(cls, settings: ConnectorServiceSettings) -> OAuthConfig:
        return cls(
            public_url=settings.public_url,
            policy=settings.egress_policy(),
            clients={
                slug: Client(c.client_id, c.client_secret.get_secret_value())
                for slug, c in settings.oauth_clients.items()
            },
            timeout=settings.oauth_timeout_seconds,
            revoke_timeout=settings.oauth_revoke_timeout_seconds,
            refresh_margin=settings.oauth_refresh_margin_seconds,
        )
