"""What can go wrong connecting an account or using its tokens, grouped by what the caller does
about it: the user reconnects (409), fixes the request (400/422), or retries later (502-504)."""

from __future__ import annotations

from typing import Any

from common.endpoints import EndpointNotAllowed
from common.errors import Conflict, GatewayTimeout, InvalidRequest, SeedosError, ServiceUnavailable


class ReconnectRequired(Conflict):
    """The provider no longer accepts this install's grant (invalid_grant, or an expired access
    token without a refresh token): the install is in ``error`` until someone connects again."""

    code, title = "reconnect_required", "Reconnect the account"


class NotConnected(Conflict):
    """An OAuth install whose account was never connected: there is no token to use."""

    code, title = "oauth_not_connected", "Account not connected"


class OAuthNotSupported(InvalidRequest):
    code, title = "oauth_not_supported", "This connector does not use OAuth"


class OAuthClientMissing(InvalidRequest):
    code, title = "oauth_client_missing", "No OAuth client for this connector"


class InvalidReturnTo(InvalidRequest):
    code, title = "invalid_return_to", "return_to is not allowed"


class IntegrationDisabled(Conflict):
    code, title = "integration_disabled", "The integration is disabled"


class _NotStored(SeedosError):
    """An answer to a browser on a public OAuth path: never kept by a cache."""

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        kw.setdefault("headers", {"Cache-Control": "no-store"})
        super().__init__(detail, **kw)


class CallbackError(_NotStored):
    """A redirect back from the provider that does not complete a connect (400)."""

    status, code, title = 400, "oauth_callback_invalid", "The OAuth callback is invalid"


class StateInvalid(CallbackError):
    code, title = "oauth_state_invalid", "Unknown or already used OAuth state"


class StateExpired(CallbackError):
    code, title = "oauth_state_expired", "The OAuth connect expired"


class AccessDenied(CallbackError):
    code, title = "oauth_denied", "The provider did not grant access"


class ExchangeFailed(CallbackError):
    code, title = "oauth_exchange_failed", "The provider refused the authorization code"


class BindingMismatch(CallbackError):
    """The callback came to a browser that did not open the connect's start URL (or has started
    another connect since): refused, and audited in the connect's tenant."""

    code, title = "connect_binding_mismatch", "This connect was started in another browser"


class StartError(_NotStored):
    """A connect's start URL that cannot be used (400)."""

    status, code, title = 400, "connect_start_invalid", "Unknown or already used connect link"


class StartInvalid(StartError):
    code, title = "connect_start_invalid", "Unknown or already used connect link"


class StartExpired(StartError):
    code, title = "connect_start_expired", "The connect link expired"


class TenantSuspended(_NotStored):
    status, code, title = 403, "tenant_suspended", "Tenant suspended"


class StartOtherPerson(StartError):
    status, code, title = 403, "connect_other_person", "Connect started by someone else"


class ProviderUnavailable(ServiceUnavailable):
    code, title = "oauth_provider_unavailable", "The OAuth provider is unreachable"


class ProviderTimeout(GatewayTimeout):
    code, title = "oauth_provider_timeout", "The OAuth provider did not answer in time"


class ProviderNotAllowed(EndpointNotAllowed):
    """The manifest's token_url or revoke_url is outside the egress rule (or not an
    http(s) URL): nothing was sent there. An :class:`EndpointNotAllowed`, so whatever handles a
    connector endpoint that is not allowed handles this too (the install goes to ``error``)."""

    code, title = "oauth_provider_not_allowed", "The OAuth provider's address is not allowed"


class ProviderError(SeedosError):
    """The provider answered, but not with tokens or a standard OAuth error we can act on."""

    status, code, title = 502, "oauth_provider_error", "The OAuth provider failed"


class OAuthUrlRefused(InvalidRequest):
    """The connector's OAuth URLs name the install's config, and this config does not make a
    URL of the provider's (a value that is not a host name's part), or lacks what they name."""

    code, title = "oauth_url_refused", "The OAuth URL cannot be made from this install's config"
