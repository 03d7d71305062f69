"""marketplace_service: the connector catalog and its search, publishing (and, in later issues,
install and recommendations)."""

from __future__ import annotations

from fastapi import FastAPI

from common.service import create_service_app
from marketplace_service.catalog.routes import router as catalog_router
from marketplace_service.publishing.routes import router as publishing_router
from marketplace_service.settings import MarketplaceSettings

SERVICE = "marketplace_service"


def create_app(settings: MarketplaceSettings | None = None) -> FastAPI:
    settings = settings or MarketplaceSettings()
    app = create_service_app(
        name=SERVICE, title="SEED-OS marketplace service", settings=settings, version="1.0.0"
    )
    app.include_router(catalog_router)
    app.include_router(publishing_router)
    return app
