"""marketplace_service: the connector catalog and recommendations (and, in later issues, search,
install and publish)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from common.service import create_service_app
from marketplace_service.catalog.routes import router as catalog_router
from marketplace_service.recommendations.engine import RecommendationEngine
from marketplace_service.recommendations.routes import router as recommendations_router
from marketplace_service.settings import MarketplaceSettings

SERVICE = "marketplace_service"


def create_app(settings: MarketplaceSettings | None = None) -> FastAPI:
    settings = settings or MarketplaceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = RecommendationEngine(
            settings.dsn or "",  # open_pool has refused to start without one
            refresh_seconds=settings.recommendations_refresh_seconds,
            health_window_seconds=settings.recommendations_health_window_seconds,
        )
        app.state.recommendations = engine
        engine.start()
        try:
            yield
        finally:
            await engine.aclose()

    app = create_service_app(
        name=SERVICE,
        title="SEED-OS marketplace service",
        settings=settings,
        extra_lifespan=lifespan,
        version="1.0.0",
    )
    app.include_router(catalog_router)
    app.include_router(recommendations_router)
    return app
