"""What every service's ``create_app`` shares: middleware, error handlers, health and metrics."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from common import db
from common.errors import install_error_handlers, problem_response
from common.internal_auth import GATEWAY_ONLY, Grant, InternalAuthMiddleware, TokenVerifier
from common.logging import configure_logging
from common.observability import ObservabilityMiddleware, add_plain_route, metrics_endpoint
from common.service_keys import SIGNING_SERVICES
from common.settings import CommonSettings

ReadyCheck = Callable[[FastAPI], Awaitable[tuple[bool, str | None]]]
Extra = Callable[[FastAPI], AbstractAsyncContextManager[None]]


async def _database_ready(app: FastAPI) -> tuple[bool, str | None]:
    return await db.ping(app.state.pool)


def settle_heap() -> None:
    """Move what is alive now (modules, the app, caches and indexes just built) out of the
    garbage collector's sight. A full collection traverses every tracked object: 150 ms in
    marketplace_service with its catalog index (146,000 objects), a stall for every request in
    flight. Frozen objects are still freed by reference counting; only cycles among them would
    stay, so what is garbage now is collected first. Call after startup and after building a
    large, long-lived structure."""
    gc.collect()
    gc.freeze()


def create_service_app(
    *,
    name: str,
    title: str,
    settings: CommonSettings,
    internal_auth: bool = True,
    trust: Mapping[str, Grant] = GATEWAY_ONLY,
    extra_lifespan: Extra | None = None,
    ready_checks: dict[str, ReadyCheck] | None = None,
    app_class: type[FastAPI] = FastAPI,
    public_prefixes: tuple[str, ...] = (),
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A FastAPI app with the suite's plumbing. ``name`` is the service's audience and
    Prometheus ``service`` label; ``trust`` says which services' internal tokens it accepts,
    and what each may ask (common/internal_auth.py); ``public_prefixes``: paths it answers reads
    of without a token (content that is public by nature)."""
    configure_logging(level=settings.log_level, fmt=settings.log_format, service=name)
    settings.require_service_secrets(signs=name in SIGNING_SERVICES, verifies=internal_auth)
    checks: dict[str, ReadyCheck] = {"database": _database_ready, **(ready_checks or {})}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await db.open_pool(settings, application_name=name)
        app.state.db = db.Database(
            app.state.pool, acquire_timeout=settings.db_acquire_timeout_seconds
        )
        try:
            if extra_lifespan is None:
                settle_heap()
                yield
            else:
                async with extra_lifespan(app):
                    settle_heap()
                    yield
        finally:
            await app.state.pool.close()

    # No trailing-slash redirects: behind the gateway they would point at the internal address.
    fastapi_kwargs.setdefault("redirect_slashes", False)
    app = app_class(title=title, lifespan=lifespan, **fastapi_kwargs)
    app.state.settings = settings
    install_error_handlers(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": name}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        results = {check: await fn(request.app) for check, fn in checks.items()}
        failing = {k: why for k, (ok, why) in results.items() if not ok}
        if failing:
            return problem_response(
                status=503,
                code="not_ready",
                title="Not ready",
                detail=", ".join(f"{k}: {v}" for k, v in failing.items()),
                checks={k: ("ok" if ok else "failing") for k, (ok, _) in results.items()},
            )
        return JSONResponse({"status": "ready", "checks": dict.fromkeys(results, "ok")})

    add_plain_route(app, "/metrics", metrics_endpoint)
    if internal_auth:
        verifier = TokenVerifier(
            public_keys=settings.public_keys(),
            audience=name,
            trust=trust,
            max_lifetime_seconds=settings.internal_token_max_lifetime_seconds,
        )
        app.add_middleware(
            InternalAuthMiddleware, verifier=verifier, public_prefixes=public_prefixes
        )
    app.add_middleware(ObservabilityMiddleware, service=name)
    return app
