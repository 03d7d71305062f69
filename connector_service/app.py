"""connector_service: installed connectors per tenant (and, in later issues, credentials,
OAuth, actions and the CRDT sync framework)."""

from __future__ import annotations

from fastapi import FastAPI

from common.service import create_service_app
from connector_service.integrations.routes import router as integrations_router
from connector_service.oauth.config import OAuthConfig
from connector_service.oauth.routes import public_router as oauth_callback_router
from connector_service.oauth.routes import router as oauth_router
from connector_service.settings import ConnectorServiceSettings

SERVICE = "connector_service"


def create_app(settings: ConnectorServiceSettings | None = None) -> FastAPI:
    settings = settings or ConnectorServiceSettings()
    app = create_service_app(
        name=SERVICE, title="SEED-OS connector service", settings=settings, version="1.0.0"
    )
    app.state.keyring = settings.key_source().ring  # validated by the settings
    app.state.oauth = OAuthConfig.from_settings(settings)
    # before the integrations router: its /{integration_id} would take "oauth" as an id
    app.include_router(oauth_callback_router)
    app.include_router(oauth_router)
    app.include_router(integrations_router)
    return app
