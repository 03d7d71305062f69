"""The platform's OAuth configuration as the flow uses it: clients per catalog entry, the
redirect URI on the public URL, timeouts, and the egress rule its requests to providers go
through. Built from the service's settings only (``create_app(settings)``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from common.endpoints import EndpointPolicy
from connector_service.settings import ConnectorServiceSettings

CALLBACK_PATH = "/api/v1/integrations/oauth/callback"
# What a connect answers: opened in the browser that will approve, it sets the binding cookie
# there and redirects to the provider. Both paths are public at the gateway, which passes the
# cookie's value on to them, and to nothing else, in BINDING_HEADER (gateway/proxy.py).
START_PATH = "/api/v1/integrations/oauth/start"
BINDING_COOKIE = "__Host-seedos_oauth"
BINDING_HEADER = "x-seedos-oauth-binding"
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

    def start_url(self, token: str) -> str:
        """The gateway URL a connect answers, with its single-use start token."""
        return f"{self.public_url.rstrip('/')}{START_PATH}?{urlencode({'token': token})}"

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
