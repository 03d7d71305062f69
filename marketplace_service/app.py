"""marketplace_service: the connector catalog with its search, publishing, install through
connector_service, and recommendations."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import structlog
from fastapi import FastAPI

from common import idempotency
from common.internal_auth import TokenSigner
from common.service import create_service_app
from marketplace_service.catalog import refresh
from marketplace_service.catalog.facets import Facets
from marketplace_service.catalog.fuzzy import Vocabulary
from marketplace_service.catalog.routes import router as catalog_router
from marketplace_service.install.routes import router as install_router
from marketplace_service.install.service import Installer
from marketplace_service.publishing import definitions
from marketplace_service.publishing.routes import router as publishing_router
from marketplace_service.recommendations.engine import RecommendationEngine
from marketplace_service.recommendations.routes import router as recommendations_router
from marketplace_service.settings import MarketplaceSettings
from marketplace_service.versions.routes import router as versions_router

SERVICE = "marketplace_service"
log = structlog.get_logger(component="marketplace_service")


def create_app(settings: MarketplaceSettings | None = None) -> FastAPI:
    settings = settings or MarketplaceSettings()

    @contextlib.asynccontextmanager
    async def running(app: FastAPI) -> AsyncIterator[None]:
        signer = TokenSigner(
            key=settings.signing_key(), issuer=SERVICE,
            ttl_seconds=settings.internal_token_ttl_seconds,
        )  # fmt: skip
        timeout = httpx.Timeout(settings.connector_service_timeout_seconds, connect=2.0)
        engine = RecommendationEngine(
            settings.dsn or "",  # open_pool has refused to start without one
            refresh_seconds=settings.recommendations_refresh_seconds,
            health_window_seconds=settings.recommendations_health_window_seconds,
        )
        app.state.recommendations = engine
        engine.start()
        await refresh.refresh_once(app.state.db, app.state.vocabulary)  # before the first search
        background = [
            asyncio.create_task(
                refresh.refresh_forever(
                    app.state.db, app.state.vocabulary, every=settings.catalog_refresh_seconds
                ),
                name="catalog-refresh",
            ),
            asyncio.create_task(_sweep_forever(app), name="idempotency-sweeper"),
            asyncio.create_task(
                app.state.facets.keep_current(
                    app.state.db, settings.dsn or "", application_name=f"{SERVICE}-listen"
                ),
                name="catalog-facets",
            ),
        ]
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            app.state.installer = Installer(
                base_url=settings.connector_service_url, signer=signer, client=client,
                db=app.state.db,
            )  # fmt: skip
            try:
                yield
            finally:
                for task in background:
                    task.cancel()
                for task in background:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await engine.aclose()

    app = create_service_app(
        name=SERVICE, title="SEED-OS marketplace service", settings=settings, version="1.0.0",
        extra_lifespan=running, public_prefixes=(definitions.PUBLIC_PREFIX,),
    )  # fmt: skip
    app.state.vocabulary = Vocabulary()
    app.state.facets = Facets(app.state.vocabulary)
    app.include_router(catalog_router)
    app.include_router(publishing_router)
    app.include_router(definitions.router)
    app.include_router(versions_router)
    app.include_router(install_router)
    app.include_router(recommendations_router)
    return app


async def _sweep_forever(app: FastAPI) -> None:
    """Drop Idempotency-Keys past their retention, every few minutes."""
    while True:
        try:
            await idempotency.sweep(app.state.db)
        except Exception as exc:  # the database may be down; try again next time
            log.warning("idempotency_sweep_failed", error=type(exc).__name__)
        await asyncio.sleep(600)
