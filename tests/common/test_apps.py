"""Properties every service app keeps."""

from __future__ import annotations

import inspect

import pytest
from fastapi.routing import APIRoute

from common.crypto import KeyRing
from connector_service.app import create_app as connector_app
from gateway.app import create_app as gateway_app
from marketplace_service.app import create_app as marketplace_app


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
    monkeypatch.setenv("SEEDOS_INTERNAL_TOKEN_KEY", "t" * 40)
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
