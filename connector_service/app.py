"""connector_service: installed connectors per tenant, their encrypted credentials, calls to
their connectors (checks, actions) and, in later issues, the CRDT sync framework."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from fastapi import FastAPI

from common import idempotency
from common.internal_auth import ANYTHING, Grant
from common.service import create_service_app
from connector_service.actions import service as actions_service
from connector_service.actions.routes import router as actions_router
from connector_service.alerts import loop as alerts_loop
from connector_service.alerts.routes import router as alerts_router
from connector_service.integrations import calls
from connector_service.integrations.routes import router as integrations_router
from connector_service.integrations.upgrade import router as upgrade_router
from connector_service.manager.breaker import Breakers
from connector_service.manager.manager import ConnectorManager, Timeouts
from connector_service.manager.recorder import Recorder
from connector_service.metrics import jobs as metric_jobs
from connector_service.metrics.routes import router as metrics_router
from connector_service.metrics.routes import summary_router as metrics_summary_router
from connector_service.monitoring.gauges import DatabaseGauges
from connector_service.oauth.config import OAuthConfig
from connector_service.oauth.routes import public_router as oauth_callback_router
from connector_service.oauth.routes import router as oauth_router
from connector_service.outbound import setup as outbound
from connector_service.settings import ConnectorServiceSettings
from connector_service.sync import loops as sync_loops
from connector_service.sync.engine import SyncEngine
from connector_service.sync.group import GroupCommit
from connector_service.sync.hub import Hub
from connector_service.sync.notify import ChangeListener
from connector_service.sync.routes import router as sync_router
from connector_service.sync.store import DocStore
from connector_service.sync.ws import router as sync_ws_router
from connector_service.webhooks import repository as webhooks_repository
from connector_service.webhooks import service as webhooks_service
from connector_service.webhooks.routes import public_router as webhooks_public_router
from connector_service.webhooks.routes import router as webhooks_router

SERVICE = "connector_service"
SWEEP_SECONDS = 600
log = structlog.get_logger(component="connector_service")


# Whose internal tokens connector_service accepts, and for what: the gateway speaks for every
# caller; marketplace_service installs and uninstalls on a caller's behalf, and nothing else.
TRUST = {
    "gateway": ANYTHING,
    "marketplace_service": Grant(
        ("POST", "/api/v1/integrations"), ("DELETE", "/api/v1/integrations/[^/]+")
    ),
}


def create_app(settings: ConnectorServiceSettings | None = None) -> FastAPI:
    settings = settings or ConnectorServiceSettings()

    @contextlib.asynccontextmanager
    async def running(app: FastAPI) -> AsyncIterator[None]:
        db = app.state.db
        recorder = Recorder(
            db, flush_seconds=settings.metrics_flush_seconds,
            batch_size=settings.metrics_batch_size, max_queued=settings.metrics_max_queued,
        )  # fmt: skip
        app.state.manager = ConnectorManager(
            policy=settings.endpoint_policy(),
            breakers=Breakers(
                threshold=settings.breaker_failure_threshold,
                open_seconds=settings.breaker_open_seconds,
            ),
            recorder=recorder,
            credentials=calls.credential_source(db, app.state.keyring, app.state.oauth),
            timeouts=Timeouts(
                connect=settings.call_connect_timeout_seconds,
                check=settings.check_timeout_seconds, call=settings.call_timeout_seconds,
                sync=settings.sync_call_timeout_seconds,
            ),
            max_attempts=settings.call_max_attempts,
            on_circuit=calls.circuit_listener(db),
        )  # fmt: skip
        app.state.sync_hub = Hub()
        app.state.sync_store = DocStore(
            db, broadcaster=app.state.sync_hub, memory_bytes=settings.sync_memory_mb * 2**20,
            max_records=settings.sync_shard_max_records, compact_rows=settings.sync_compact_rows,
        )  # fmt: skip
        listener = ChangeListener(
            settings.dsn or "", app.state.sync_store, app.state.sync_hub,
            application_name=f"{SERVICE}-listen",
        )  # fmt: skip
        app.state.sync_group = GroupCommit(app.state.sync_store)
        app.state.sync_engine = SyncEngine(db, app.state.sync_store, app.state.manager)
        webhook_pulls = webhooks_service.Pulls(app.state.sync_engine)
        app.state.webhooks = webhooks_service.Intake(
            db, app.state.keyring, app.state.sync_store, webhook_pulls
        )
        recorder.start()
        loops = [
            asyncio.create_task(_sweep_forever(app), name="idempotency-sweeper"),
            asyncio.create_task(sync_loops.push_forever(app.state.sync_engine), name="sync-push"),
            asyncio.create_task(
                sync_loops.schedule_forever(app.state.sync_engine), name="sync-schedule"
            ),
            asyncio.create_task(listener.run(), name="sync-listen"),
            asyncio.create_task(metric_jobs.run_forever(db, settings), name="metric-rollups"),
            asyncio.create_task(  # outbox, dead letters, sync lag (issue 19, part 1)
                DatabaseGauges(db).run_forever(settings.monitoring_gauge_seconds),
                name="monitoring-gauges",
            ),
            asyncio.create_task(alerts_loop.run_forever(db, settings), name="alerts"),
        ]
        if settings.outbound_deliver:
            loops.append(asyncio.create_task(outbound.serve(app, settings), name="outbound"))
        try:
            yield
        finally:
            app.state.sync_hub.close_all()
            for task in loops + list(app.state.sync_engine.running.values()):
                task.cancel()
            for task in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await webhook_pulls.aclose()
            await app.state.manager.aclose()
            with contextlib.suppress(Exception):
                await recorder.aclose()

    app = create_service_app(
        name=SERVICE, title="SEED-OS connector service", settings=settings, version="1.0.0",
        extra_lifespan=running, trust=TRUST,
    )  # fmt: skip
    app.state.keyring = settings.key_source().ring  # validated by the settings
    app.state.oauth = OAuthConfig.from_settings(settings)
    # before the integrations router: its /{integration_id} would take "oauth" as an id
    app.include_router(oauth_callback_router)
    app.include_router(webhooks_public_router)
    app.include_router(oauth_router)
    app.include_router(metrics_summary_router)  # /metrics/summary: before /{integration_id}
    app.include_router(webhooks_router)
    app.include_router(alerts_router)
    app.include_router(integrations_router)
    app.include_router(upgrade_router)
    app.include_router(actions_router)
    app.include_router(sync_router)
    app.include_router(metrics_router)
    app.include_router(sync_ws_router)
    outbound.install(app, settings)  # /api/v1/webhooks (issue 19, part 4)
    return app


async def _sweep_forever(app: FastAPI) -> None:
    """Drop Idempotency-Keys past their retention, every few minutes."""
    while True:
        try:
            # action runs, and the keys of other writes (installs)
            gone = await actions_service.sweep(app.state.db) + await idempotency.sweep(app.state.db)
            async with app.state.db.connection() as conn:
                await webhooks_repository.sweep(conn)  # deliveries past their week
            if gone:
                log.info("idempotency_keys_expired", count=gone)
        except Exception as exc:  # the database may be down; try again next time
            log.warning("idempotency_sweep_failed", error=type(exc).__name__)
        await asyncio.sleep(SWEEP_SECONDS)
