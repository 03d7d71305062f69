"""How connector_service takes outbound webhooks in: the routes and their state, and the
delivery loop run in the lifespan (one per process; the queue is shared with SKIP LOCKED)."""

from __future__ import annotations

from fastapi import FastAPI

from connector_service.outbound.routes import router
from connector_service.outbound.worker import Deliverer
from connector_service.settings import ConnectorServiceSettings


def install(app: FastAPI, settings: ConnectorServiceSettings) -> None:
    app.state.outbound_policy = settings.egress_policy()
    app.state.outbound_grace_seconds = settings.webhook_secret_grace_hours * 3600
    app.include_router(router)


async def serve(app: FastAPI, settings: ConnectorServiceSettings) -> None:
    """The delivery loop until cancelled (shutdown), its HTTP client closed after."""
    deliverer = Deliverer(
        app.state.db, app.state.keyring, policy=app.state.outbound_policy, settings=settings
    )
    try:
        await deliverer.run()
    finally:
        await deliverer.aclose()
