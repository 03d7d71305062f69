"""The gateway (BFF): the only public entry. Authenticates, resolves tenant and role, serves its
own routes and forwards ``/api/v1/integrations/**`` (but ``POST …/sync/ticket``, its own) and
``/api/v1/marketplace/**``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from common.internal_auth import TokenSigner
from common.observability import ObservabilityMiddleware, add_plain_route
from common.service import create_service_app
from gateway.admin.routes import router as admin_router
from gateway.api_keys.routes import router as api_keys_router
from gateway.audit_logs.routes import router as audit_logs_router
from gateway.auth.authenticator import Authenticator
from gateway.auth.jwts import Issuers
from gateway.browser import BrowserSafety
from gateway.dashboard.assets import Assets
from gateway.dashboard.pages import router as dashboard_router
from gateway.dashboard.worker import router as service_worker_router
from gateway.domains.routes import router as domains_router
from gateway.guard import Limits, RequestGuard
from gateway.invitations.routes import router as invitations_router
from gateway.limits import limiter
from gateway.limits.concurrency import TenantSlots
from gateway.me.notifications import router as notifications_router
from gateway.me.routes import router as me_router
from gateway.members.routes import router as members_router
from gateway.offline.routes import PATH as OFFLINE_PATH
from gateway.offline.routes import router as offline_router
from gateway.oidc.routes import BODY_LIMITS
from gateway.oidc.routes import router as sign_in_router
from gateway.oidc.service import Providers
from gateway.openapi import OpenAPIMerger
from gateway.proxy import Proxy, ProxyEndpoint, Upstream, make_session
from gateway.public import WEBHOOK_MAX_BODY, WEBHOOK_PREFIX, PublicPaths
from gateway.ratelimit import AddressLimiter
from gateway.sessions.purge import purge_periodically
from gateway.sessions.service import Timeouts
from gateway.settings import GatewaySettings
from gateway.tenants.routes import router as tenant_router
from gateway.ws_proxy import WebSocketProxy, make_ws_session
from gateway.ws_tickets.routes import router as ws_tickets_router
from gateway.ws_tickets.service import TICKET_PATH

SERVICE = "gateway"
TOKEN_REUSE_SECONDS = 5.0
# Longest prefix first; the services serve the same paths the gateway exposes.
ROUTES = {
    "/api/v1/integrations": "connector_service",
    "/api/v1/marketplace": "marketplace_service",
    "/api/v1/webhooks": "connector_service",  # outbound webhooks (issue 19, part 4)
}
# The only paths whose requests are served without an API key, each with the most body it may
# send: a connect's start link, opened in the browser that will approve, and where OAuth
# providers send that browser back (forwarded, GET and HEAD only, with no cookie but the OAuth
# binding: gateway/proxy.py; no body at all); and a provider's webhook deliveries to an
# install's URL (POST only, the body passed on unread: the install's signing secret is what
# authorizes them, in connector_service). Keep the README's list ("Public paths") in step.
PUBLIC_PATHS = PublicPaths(
    {  # with the most body each may send: none
        "/api/v1/integrations/oauth/start": 0,
        "/api/v1/integrations/oauth/callback": 0,
    },
    {WEBHOOK_PREFIX: WEBHOOK_MAX_BODY},
)


class GatewayApp(FastAPI):
    """FastAPI, with the proxied prefixes (plain requests and WebSocket upgrades) dispatched
    before its own stack.

    Those are the gateway's hottest paths and use none of FastAPI's routing, dependency or
    exception machinery; skipping it took about 0.1-0.2 ms off every proxied request here
    (docs/benchmarks.md). They keep the same request id, metrics and access log.

    Every path, proxied or not, goes through a :class:`~gateway.guard.RequestGuard` just inside
    the request id and access log: bodies over the limit are refused from the headers, and on
    the gateway's own routes a body is read only once its sender is authenticated.
    """

    def __init__(
        self, *args: Any, limits: Limits, gateway_settings: GatewaySettings, **kwargs: Any
    ) -> None:
        settings = gateway_settings
        super().__init__(*args, **kwargs)
        self._proxy_endpoint = ProxyEndpoint(ROUTES, public=PUBLIC_PATHS)
        # The proxy authenticates before it reads: the guard only bounds what it reads.
        guarded = RequestGuard(
            self._proxy_endpoint, limits=limits, authenticate=False, public=PUBLIC_PATHS
        )
        self._proxy_app = ObservabilityMiddleware(guarded, service=SERVICE)
        self._ws_proxy_app = ObservabilityMiddleware(
            RequestGuard(WebSocketProxy(self._proxy_endpoint), limits=limits, authenticate=False),
            service=SERVICE,
        )
        # Added first, so innermost: the middleware create_service_app adds afterwards (request
        # id, access log, metrics, the 500 answer) wrap it, and none of them reads a body.
        # /auth/* and / authenticate (or not) themselves.
        own_public = {**PUBLIC_PATHS, **BODY_LIMITS, "/": 0}
        self.add_middleware(RequestGuard, limits=limits, authenticate=True, public=own_public)
        # the rate-limit fields on the answers of the own /api/v1/** routes (gateway/limits)
        self.add_middleware(limiter.RateLimitFields)
        # Outermost, around proxied paths too: security headers, cookies, CORS.
        self._browser = BrowserSafety(
            self._dispatch,
            https=settings.public_url.startswith("https://"),
            form_action=Providers.issuer_origins(settings),
            cors_origins=settings.cors_origins,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._browser(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._proxied(scope):
            scope["app"] = self
            await self._proxy_app(scope, receive, send)
            return
        if scope["type"] == "websocket" and self._proxy_endpoint.match(scope["path"]):
            scope["app"] = self
            await self._ws_proxy_app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def _proxied(self, scope: Scope) -> bool:
        """Whether a plain request is forwarded: the gateway issues WebSocket tickets itself
        (they stand for the caller's credential, which only the gateway knows)."""
        if scope["method"] == "POST" and (
            TICKET_PATH.fullmatch(scope["path"]) or scope["path"] == OFFLINE_PATH
        ):
            return False
        return self._proxy_endpoint.match(scope["path"]) is not None


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    # one token per principal and service for a few seconds: signing is then off the hot path
    signer = TokenSigner(
        key=settings.signing_key(), issuer=SERVICE,
        ttl_seconds=settings.internal_token_ttl_seconds,
        reuse_seconds=min(TOKEN_REUSE_SECONDS, settings.internal_token_ttl_seconds / 4),
    )  # fmt: skip
    base_urls = {
        "connector_service": settings.connector_service_url.rstrip("/"),
        "marketplace_service": settings.marketplace_service_url.rstrip("/"),
    }

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.authenticator = Authenticator(
            app.state.db,
            ttl_seconds=settings.api_key_cache_ttl_seconds,
            max_size=settings.api_key_cache_size,
            public_origin=settings.public_origin,
            timeouts=Timeouts(settings.session_idle_seconds, settings.session_absolute_seconds),
            issuers=Issuers.from_settings(settings),
        )
        app.state.providers = Providers(settings)
        app.state.assets = Assets()
        app.state.auth_limiter = AddressLimiter(per_minute=settings.auth_rate_per_minute)
        redis_url = settings.rate_limit_redis_url
        app.state.rate_limiter = limiter.build(
            settings.rate_limits, redis_url=redis_url.get_secret_value() if redis_url else None
        )
        app.state.tenant_slots = TenantSlots(max_per_tenant=settings.tenant_max_concurrent)
        purging = asyncio.create_task(purge_periodically(app.state.db))
        upstreams = {
            name: Upstream(
                name=name,
                base_url=url,
                session=make_session(
                    connect_timeout=settings.upstream_connect_timeout_seconds,
                    read_timeout=settings.upstream_timeout_seconds,
                    max_connections=settings.upstream_max_connections,
                ),
            )
            for name, url in base_urls.items()
        }
        app.state.upstreams = upstreams
        # WebSockets last as long as the client stays: on their own connections, so that they
        # neither count against nor wait for the pooled ones plain requests use.
        app.state.ws_sessions = {
            name: make_ws_session(connect_timeout=settings.upstream_connect_timeout_seconds)
            for name in upstreams
        }
        app.state.proxy = Proxy(
            signer=signer,
            max_body_bytes=settings.max_body_bytes,
            timeout=settings.upstream_timeout_seconds,
        )
        app.state.openapi_merger = OpenAPIMerger(
            app, list(upstreams.values()), signer, settings.openapi_cache_seconds
        )
        try:
            yield
        finally:
            purging.cancel()
            await app.state.authenticator.failure_audit.drain()
            await app.state.authenticator.issuers.close()
            await app.state.providers.close()
            await app.state.rate_limiter.close()
            for upstream in upstreams.values():
                await upstream.session.close()
            for session in app.state.ws_sessions.values():
                await session.close()

    app = create_service_app(
        name=SERVICE,
        title="SEED-OS Integration Layer",
        settings=settings,
        internal_auth=False,  # the gateway authenticates callers itself
        extra_lifespan=lifespan,
        version="1.0.0",
        description="Discover, install, configure and sync third-party connectors.",
        docs_url=None,
        openapi_url=None,
        app_class=GatewayApp,
        gateway_settings=settings,
        limits=Limits(
            max_body_bytes=settings.max_body_bytes, max_json_depth=settings.max_json_depth
        ),
    )
    app.include_router(me_router)
    app.include_router(notifications_router)  # per-user opt-out (issue 19, part 4)
    app.include_router(sign_in_router)
    app.include_router(api_keys_router)
    app.include_router(audit_logs_router)
    app.include_router(tenant_router)
    app.include_router(members_router)
    app.include_router(invitations_router)
    app.include_router(domains_router)
    app.include_router(admin_router)
    app.include_router(ws_tickets_router)
    app.include_router(offline_router)
    _add_docs(app)
    app.include_router(dashboard_router)
    app.include_router(service_worker_router)
    return app


def _add_docs(app: FastAPI) -> None:
    # FastAPI's own openapi() covers the gateway's routes; the merger adds the services'.
    async def openapi_json(request: Request) -> JSONResponse:
        return JSONResponse(await request.app.state.openapi_merger.document())

    async def docs(_request: Request) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="SEED-OS API")

    add_plain_route(app, "/openapi.json", openapi_json)
    add_plain_route(app, "/docs", docs)
