"""Properties every service app keeps."""

from __future__ import annotations

import gc
import inspect
import time

import pytest
from fastapi.routing import APIRoute

from common.crypto import KeyRing
from common.service import create_service_app
from common.settings import CommonSettings
from connector_service.app import create_app as connector_app
from gateway.app import create_app as gateway_app
from marketplace_service.app import create_app as marketplace_app
from seedos_cli.deployment_keys import ServiceKeys


def _api_routes(routes):
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None) or route  # FastAPI's included routers
        if inner is not route or hasattr(route, "routes"):
            yield from _api_routes(getattr(inner, "routes", []))


def _calls(dependant):
    yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


@pytest.mark.parametrize("factory", [gateway_app, connector_app, marketplace_app])
def test_no_route_or_dependency_runs_in_the_thread_pool(factory, monkeypatch):
    """FastAPI runs plain `def` endpoints and dependencies in a thread pool: about a millisecond
    a request here. Every one must be `async def`."""
    for name, value in ServiceKeys.generate().env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SEEDOS_CREDENTIAL_KEYS", KeyRing.generate().to_json())
    app = factory()
    routes = list(_api_routes(app.routes))
    assert any(r.path.startswith("/api/v1/") for r in routes)
    for route in routes:
        for call in _calls(route.dependant):
            if call is None:
                continue
            assert inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call), (
                f"{route.path}: {getattr(call, '__qualname__', call)} is synchronous"
            )


async def test_a_started_service_keeps_its_long_lived_objects_out_of_full_collections(dsn):
    """After startup the live heap is frozen (gc.freeze): a full collection then traverses only
    what was made since, not the whole service (150 ms in marketplace_service before)."""
    settings = CommonSettings(database_url=dsn, internal_token_key="t" * 40)
    app = create_service_app(name="probe", title="probe", settings=settings)
    gc.unfreeze()  # whatever an earlier test froze
    assert gc.get_freeze_count() == 0
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > 10_000  # modules, FastAPI, this test session
            started = time.perf_counter()
            gc.collect()
            took = time.perf_counter() - started
            gc.unfreeze()
            started = time.perf_counter()
            gc.collect()
            assert took < time.perf_counter() - started  # the frozen heap is not traversed
    finally:
        gc.unfreeze()


def _solved(dependant):
    """Dependency calls in the order FastAPI runs them (each after its own dependencies)."""
    for sub in dependant.dependencies:
        yield from _solved(sub)
    yield dependant.call


def test_gateway_routes_authenticate_before_taking_a_database_connection(monkeypatch):
    """A route that holds a pooled connection while its caller is authenticated (a cache miss
    needs a second one) lets callers with made-up keys hold the whole pool: every such route
    authenticates first (rate limiting, in the same dependency, then also runs first)."""
    from common.db import get_db, get_read_db
    from gateway.deps import any_principal, current_principal

    for name, value in ServiceKeys.generate().env().items():
        monkeypatch.setenv(name, value)
    app = gateway_app()
    late = []
    for route in _api_routes(app.routes):
        order = list(_solved(route.dependant))
        db = [i for i, call in enumerate(order) if call in (get_db, get_read_db)]
        auth = [i for i, call in enumerate(order) if call in (current_principal, any_principal)]
        if db and auth and min(auth) > min(db):
            late.append(f"{sorted(route.methods)} {route.path}")
    assert not late, f"these take a connection before authenticating: {late}"
