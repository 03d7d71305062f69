"""marketplace_service: the connector catalog and its search, publishing (and, in later issues,
install and recommendations)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from common.service import create_service_app
from marketplace_service.catalog import refresh
from marketplace_service.catalog.fuzzy import Vocabulary
from marketplace_service.catalog.routes import router as catalog_router
from marketplace_service.publishing.routes import router as publishing_router
from marketplace_service.settings import MarketplaceSettings

SERVICE = "marketplace_service"


def create_app(settings: MarketplaceSettings | None = None) -> FastAPI:
    settings = settings or MarketplaceSettings()

    @contextlib.asynccontextmanager
    async def running(app: FastAPI) -> AsyncIterator[None]:
        await refresh.refresh_once(app.state.db, app.state.vocabulary)  # before the first search
        counting = asyncio.create_task(
            refresh.refresh_forever(
                app.state.db, app.state.vocabulary, every=settings.catalog_refresh_seconds
            ),
            name="catalog-refresh",
        )
        try:
            yield
        finally:
            counting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await counting

    app = create_service_app(
        name=SERVICE, title="SEED-OS marketplace service", settings=settings, version="1.0.0",
        extra_lifespan=running,
    )  # fmt: skip
    app.state.vocabulary = Vocabulary()
    app.include_router(catalog_router)
    app.include_router(publishing_router)
    return app
