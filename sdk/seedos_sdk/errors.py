"""Errors grouped by what the caller should do about them.

Raise these from read, write, check and action functions; the server reports each over the
contract as RFC 9457 problem+json with a ``category`` the connector service acts on:

* :class:`RetryableError` — try again later (rate limits, 5xx, timeouts, connection errors).
* :class:`PermanentError` — the same request will fail again (bad credentials, validation).
* :class:`SkippableError` — this one record or item is bad; carry on with the rest.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Category(StrEnum):
    retryable = "retryable"
    permanent = "permanent"
    skippable = "skippable"


class ConnectorError(Exception):
    """Base class of every error a connector reports."""

    category: Category = Category.permanent
    status: int = 422
    code: str = "connector_error"

    def __init__(
        self, message: str, *, code: str | None = None, status: int | None = None, **details: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.status = status or self.status
        self.details = details

    @property
    def upstream_status(self) -> int | None:
        """The external API's HTTP status, when the error came from one of its answers."""
        return self.details.get("status_code")

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"urn:seedos:problem:{self.code}",
            "title": self.category.value.capitalize() + " error",
            "status": self.status,
            "detail": self.message,
            "code": self.code,
            "category": self.category.value,
            "retryable": self.category is Category.retryable,
        }
        if instance:
            body["instance"] = instance
        body.update(self.details)
        return body


class RetryableError(ConnectorError):
    """A transient failure: the same call may succeed later.

    Args:
        message: what happened.
        retry_after: seconds the external system asked to wait, if it said.
    """

    category = Category.retryable
    status = 503
    code = "retryable_error"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after
        if retry_after is not None:
            self.details["retry_after"] = retry_after


class PermanentError(ConnectorError):
    """The external system refused the request and will refuse it again."""

    category = Category.permanent
    status = 422
    code = "permanent_error"


class AuthError(PermanentError):
    """The credentials were refused: the user must reconnect or fix them."""

    status = 401
    code = "auth_failed"


class SkippableError(ConnectorError):
    """One record or item is unusable; the rest of the batch goes on."""

    category = Category.skippable
    status = 422
    code = "skippable_error"


class RequestInvalid(PermanentError):
    """The contract request itself is malformed (bad body, unknown stream or action)."""

    status = 422
    code = "validation_failed"


class InvalidOutput(PermanentError):
    """The connector produced a record or action output that breaks its own schema (debug mode
    and the conformance suite check this): a bug in the connector, not in the request."""

    status = 500
    code = "invalid_output"
