"""Talking to an OAuth 2.0 provider with authlib: the authorization URL (PKCE S256), the code
exchange, refresh (RFC 6749) and revocation (RFC 7009). Transport failures become 503/504,
answers that are not tokens 502; a standard OAuth error comes back as :class:`Refused` for the
caller to decide. No token, secret or code is ever put in an error message.

The token and revocation URLs come from a connector's manifest, which anyone with the publisher
role can write, and the requests carry client secrets and refresh tokens: they connect through
the checked transport (manager/transport.py) under the egress rule (``OAuthConfig.policy``), so
the rule is applied to the very addresses connected to and no proxy from the environment is
used. A refusal is :class:`ProviderNotAllowed` (422 ``oauth_provider_not_allowed``), and nothing
was sent. Token URLs may have a query (RFC 6749 section 3.2), never a fragment."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Iterator, Mapping
from typing import Any

import httpx
from authlib.integrations.base_client.errors import OAuthError

# (the tests that take a provider down check that httpx's are the exceptions authlib raises)
from common.authlib_client import AsyncOAuth2Client
from common.endpoints import EndpointNotAllowed, EndpointPolicy, HostNotResolved
from connector_service.manager.transport import CheckedTransport
from connector_service.oauth.config import Client
from connector_service.oauth.errors import (
    ProviderError,
    ProviderNotAllowed,
    ProviderTimeout,
    ProviderUnavailable,
)

CONNECT_TIMEOUT = 3.0
_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class Refused(Exception):
    """The provider answered with an OAuth error (``invalid_grant``, ``invalid_client`` ...)."""

    def __init__(self, error: str) -> None:
        self.error = safe_error_code(error)
        super().__init__(self.error)


def safe_error_code(value: object) -> str:
    """A provider's error code, or ``unknown_error`` if it is not shaped like one (it is echoed
    in problems and the audit log)."""
    text = str(value or "")
    return text if _ERROR_CODE.match(text) else "unknown_error"


def _session(
    client: Client, policy: EndpointPolicy, *, timeout: float, **kwargs: Any
) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client.client_id,
        client.client_secret,
        timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
        follow_redirects=False,
        trust_env=False,
        transport=CheckedTransport(policy, limits=httpx.Limits(max_connections=4)),
        **kwargs,
    )


@contextlib.contextmanager
def _not_allowed_as_provider(what: str) -> Iterator[None]:
    """The rule's refusal of the manifest's ``what`` (token_url, revoke_url), saying which."""
    try:
        yield
    except EndpointNotAllowed as exc:
        if isinstance(exc, ProviderNotAllowed):
            raise
        raise ProviderNotAllowed(f"the connector's {what}: {exc.detail}") from None


async def check_endpoint(policy: EndpointPolicy, url: str, *, what: str) -> None:
    """Refuse up front a ``url`` the token request would be refused at (before the user is sent
    to consent for nothing). The request itself is checked again when it connects; a host that
    does not resolve right now is left to it (a connection error, worth retrying)."""
    with _not_allowed_as_provider(what):
        host, port = policy.check_syntax(url, fixed_path=False)
        try:
            addresses = await policy.resolve(host, port)
        except HostNotResolved:
            return
        policy.check_addresses(host, addresses)


async def authorization_url(
    *,
    client_id: str,
    authorize_url: str,
    redirect_uri: str,
    scopes: list[str],
    state: str,
    code_verifier: str,
    extra: Mapping[str, str] | None = None,
    scope_separator: str = " ",
) -> str:
    """Where to send the browser. ``prompt=consent`` asks the user every time, which is what a
    connect is, and is what providers such as Google need to issue a refresh token again;
    providers that do not know the parameter ignore it (RFC 6749 section 3.1). ``extra``: the
    connector's own authorization parameters (Google's ``access_type=offline``); they never
    replace the flow's own (the definition format refuses those names)."""
    async with AsyncOAuth2Client(
        client_id,
        redirect_uri=redirect_uri,
        scope=(scope_separator if scope_separator in (" ", ",") else " ").join(scopes) or None,
        code_challenge_method="S256",
    ) as session:
        own = {"client_id", "redirect_uri", "response_type", "scope", "state", "code_challenge",
               "code_challenge_method", "code_verifier"}  # fmt: skip
        params = {"prompt": "consent", **{k: str(v) for k, v in (extra or {}).items()
                                          if k not in own}}  # fmt: skip
        url, _ = session.create_authorization_url(
            authorize_url, state=state, code_verifier=code_verifier, **params
        )
    return url


async def exchange_code(
    client: Client,
    *,
    policy: EndpointPolicy,
    token_url: str,
    code: str,
    code_verifier: str,
    redirect_uri: str,
    timeout_seconds: float,
) -> dict[str, Any]:
    """Tokens for an authorization code. Raises :class:`ProviderNotAllowed` (nothing sent) when
    ``token_url`` is not allowed by ``policy``."""
    with _not_allowed_as_provider("token_url"):
        policy.check_syntax(token_url, fixed_path=False)
        async with _session(
            client, policy, timeout=timeout_seconds, redirect_uri=redirect_uri
        ) as session:
            fetched = session.fetch_token(
                token_url, grant_type="authorization_code", code=code, code_verifier=code_verifier
            )
            return await _tokens(fetched)


async def refresh(
    client: Client,
    *,
    policy: EndpointPolicy,
    token_url: str,
    refresh_token: str,
    timeout_seconds: float,
) -> dict[str, Any]:
    """New tokens for a refresh token. Without a new refresh token in the answer the old one
    stays valid (authlib puts it back in the result). Raises :class:`ProviderNotAllowed`
    (nothing sent) when ``token_url`` is not allowed by ``policy``."""
    with _not_allowed_as_provider("token_url"):
        policy.check_syntax(token_url, fixed_path=False)
        async with _session(client, policy, timeout=timeout_seconds) as session:
            return await _tokens(session.refresh_token(token_url, refresh_token=refresh_token))


async def revoke(
    client: Client,
    *,
    policy: EndpointPolicy,
    revoke_url: str,
    token: str,
    hint: str,
    timeout_seconds: float,
) -> str | None:
    """RFC 7009 revocation; ``None`` when the provider accepted it, else why not (``endpoint not
    allowed: ...`` when ``policy`` refused ``revoke_url``: nothing was sent)."""
    try:
        with _not_allowed_as_provider("revoke_url"):
            policy.check_syntax(revoke_url, fixed_path=False)
            async with _session(client, policy, timeout=timeout_seconds) as session:
                response = await session.revoke_token(revoke_url, token=token, token_type_hint=hint)
    except ProviderNotAllowed as exc:
        return f"endpoint not allowed: {exc.detail}"
    except httpx.TimeoutException:
        return "timeout"
    except httpx.TransportError:
        return "unreachable"
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:  # e.g. a malformed revoke_url
        return type(exc).__name__
    return None if response.status_code == 200 else f"HTTP {response.status_code}"


async def _tokens(call: Awaitable[Any]) -> dict[str, Any]:
    try:
        token = await call
    except OAuthError as exc:
        raise Refused(exc.error) from None
    except httpx.TimeoutException:
        raise ProviderTimeout("the OAuth provider did not answer in time") from None
    except httpx.TransportError as exc:
        raise ProviderUnavailable(
            f"the OAuth provider is unreachable ({type(exc).__name__})",
            headers={"Retry-After": "5"},
        ) from None
    except (httpx.HTTPStatusError, ValueError) as exc:
        raise ProviderError(f"the token endpoint failed: {type(exc).__name__}") from None
    access = token.get("access_token") if isinstance(token, dict) else None
    if not isinstance(access, str) or not access:
        raise ProviderError("the token endpoint answered without an access token")
    return dict(token)
