"""Errors the demo CRM answers with, rendered as ``{"error": code, "message": ...}``."""

from __future__ import annotations


class CrmError(Exception):
    """Base error: an HTTP status, a stable code and a human message."""

    status = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.headers = headers or {}


class InvalidRequest(CrmError):
    status = 400
    code = "invalid_request"


class Unauthorized(CrmError):
    status = 401
    code = "unauthorized"

    def __init__(self, message: str = "missing or invalid credentials") -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class InsufficientScope(CrmError):
    status = 403
    code = "insufficient_scope"

    def __init__(self, scope: str) -> None:
        super().__init__(
            f"the token lacks the scope {scope!r}",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
        )


class NotFound(CrmError):
    status = 404
    code = "not_found"


class Conflict(CrmError):
    status = 409
    code = "conflict"


class AuthServerUnavailable(CrmError):
    status = 503
    code = "introspection_unavailable"
