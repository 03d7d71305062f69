"""The demo CRM's ASGI application: ``create_app(settings)`` and its lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import admin, routes
from .auth import Authenticator
from .errors import CrmError
from .faults import FaultMiddleware, Faults
from .settings import Settings, get_settings
from .store import Database

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type"}


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the demo CRM; ``settings`` default to the ``DEMO_CRM_*`` environment."""
    settings = settings or get_settings()
    faults = Faults()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_path)
        await asyncio.to_thread(db.open)
        async with httpx.AsyncClient() as client:
            app.state.db = db
            app.state.authenticator = Authenticator(settings, client)
            try:
                yield
            finally:
                await asyncio.to_thread(db.close)

    app = FastAPI(title="Demo CRM", version="1.0.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.faults = faults
    app.add_middleware(FaultMiddleware, faults=faults)
    app.include_router(routes.contacts)
    app.include_router(routes.companies)
    app.include_router(admin.router)
    app.add_exception_handler(CrmError, _crm_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


async def _crm_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CrmError)
    return _error(exc.status, exc.code, exc.message, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [_describe(error) for error in exc.errors()]
    return _error(400, "invalid_request", "; ".join(problems) or "invalid request")


def _describe(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        return "the body is not valid JSON"
    loc = [str(part) for part in error.get("loc", ())]
    if len(loc) > 1 and loc[0] == "body":
        loc = loc[1:]
    return f"{'.'.join(loc)}: {error['msg']}" if loc else str(error["msg"])


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return _error(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))
