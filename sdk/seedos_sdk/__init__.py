"""seedos-sdk: build SEED-OS connectors as small HTTP services."""

from seedos_sdk.connector import (
    ApiKeyAuth,
    BasicAuth,
    Connector,
    Context,
    NoAuth,
    OAuth2Auth,
    Page,
    WriteResult,
    secret_string,
)
from seedos_sdk.errors import (
    AuthError,
    Category,
    ConnectorError,
    PermanentError,
    RetryableError,
    SkippableError,
)
from seedos_sdk.http import HttpClient

__version__ = "0.1.0"
__all__ = [
    "ApiKeyAuth",
    "AuthError",
    "BasicAuth",
    "Category",
    "Connector",
    "ConnectorError",
    "Context",
    "HttpClient",
    "NoAuth",
    "OAuth2Auth",
    "Page",
    "PermanentError",
    "RetryableError",
    "SkippableError",
    "WriteResult",
    "secret_string",
]
