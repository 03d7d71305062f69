"""One error base class and the handlers that render every failure as RFC 9457 problem+json.

Business rules raise subclasses of :class:`SeedosError`; routes never build error responses.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger(component="seedos.errors")


def problem_type(code: str) -> str:
    """The stable ``type`` URI of a problem code."""
    return f"urn:seedos:problem:{code}"


class SeedosError(Exception):
    """A failure with an HTTP status and a stable machine-readable code."""

    status: int = 500
    code: str = "internal_error"
    title: str = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.status = status or self.status
        self.code = code or self.code
        self.title = title or self.title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra
        super().__init__(detail or self.title)


class Unauthorized(SeedosError):
    status, code, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kw)


class Forbidden(SeedosError):
    status, code, title = 403, "forbidden", "Not allowed"


class NotFound(SeedosError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(SeedosError):
    status, code, title = 409, "conflict", "Conflict"


class InvalidRequest(SeedosError):
    status, code, title = 422, "invalid_request", "Invalid request"


class PayloadTooLarge(SeedosError):
    status, code, title = 413, "payload_too_large", "Request body too large"


class ServiceUnavailable(SeedosError):
    status, code, title = 503, "service_unavailable", "Service unavailable"


class GatewayTimeout(SeedosError):
    status, code, title = 504, "upstream_timeout", "Upstream timed out"


_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details; `code` is stable and machine-readable.",
    "properties": {
        "type": {"type": "string", "example": "urn:seedos:problem:forbidden"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "code": {"type": "string", "example": "forbidden"},
    },
    "required": ["type", "title", "status", "code"],
}
_DESCRIPTIONS = {
    401: "No, or an unknown, expired or revoked, credential",
    403: "The caller's role does not allow this",
    404: "Not found",
    422: "The request is invalid (the problem lists why)",
    503: "A dependency is unavailable; retry later",
}
# `responses=` for routers: documents the problem+json answers every route can give.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": text,
        "content": {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}},
    }
    for status, text in _DESCRIPTIONS.items()
}


def problem_body(
    *, status: int, code: str, title: str, detail: str | None, instance: str | None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": problem_type(code), "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body["code"] = code
    body.update(extra)
    return body


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = problem_body(
        status=status, code=code, title=title, detail=detail, instance=instance, **extra
    )
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def error_body(exc: SeedosError, instance: str | None = None) -> dict[str, Any]:
    """The problem+json body of an error (what :func:`error_response` sends)."""
    return problem_body(
        status=exc.status, code=exc.code, title=exc.title, detail=exc.detail, instance=instance,
        **exc.extra,
    )  # fmt: skip


def error_response(exc: SeedosError, instance: str | None = None) -> JSONResponse:
    return JSONResponse(
        error_body(exc, instance), status_code=exc.status, media_type=PROBLEM_JSON,
        headers=exc.headers,
    )  # fmt: skip


async def _seedos_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SeedosError)
    return error_response(exc, request.url.path)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    code = phrase.lower().replace(" ", "_").replace("-", "_")
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    return problem_response(
        status=exc.status_code,
        code=code,
        title=phrase,
        detail=detail,
        instance=request.url.path,
        headers=getattr(exc, "headers", None),
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    if any(e["type"] == "json_invalid" for e in errors):
        return problem_response(
            status=422,
            code="invalid_json",
            title="The body is not valid JSON",
            detail="the request body is not valid JSON",
            instance=request.url.path,
        )
    return problem_response(
        status=422,
        code="validation_failed",
        title="Request validation failed",
        detail="; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors),
        instance=request.url.path,
        errors=errors,
    )


class UnhandledErrorMiddleware:
    """Turns an unexpected exception into a 500 problem+json and keeps the connection.

    Starlette's outermost error middleware answers too, but then re-raises, so the server logs
    the error a second time and drops the keep-alive connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled_error", path=scope["path"])
            if started:
                raise
            response = problem_response(
                status=500, code="internal_error", title="Internal error", instance=scope["path"]
            )
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SeedosError, _seedos_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(UnhandledErrorMiddleware)
