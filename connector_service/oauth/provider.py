"""Talking to an OAuth 2.0 provider with authlib: the authorization URL (PKCE S256), the code
exchange, refresh (RFC 6749) and revocation (RFC 7009). Transport failures become 503/504,
answers that are not tokens 502; a standard OAuth error comes back as :class:`Refused` for the
caller to decide. No token, secret or code is ever put in an error message."""

from __future__ import annotations

import re
import warnings
from collections.abc import Awaitable
from typing import Any

import httpx
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.base_client.errors import OAuthError

# authlib 1.8+ prefers the httpx2 package and warns once, at import, when it falls back to httpx,
# which is what this suite uses (and what the exceptions below are). The tests that take a
# provider down check that those are the exceptions authlib raises.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "The httpx module is deprecated", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

from connector_service.oauth.config import Client
from connector_service.oauth.errors import ProviderError, ProviderTimeout, ProviderUnavailable

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


def _session(client: Client, *, timeout: float, **kwargs: Any) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client.client_id,
        client.client_secret,
        timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
        follow_redirects=False,
        trust_env=False,
        **kwargs,
    )


async def authorization_url(
    *,
    client_id: str,
    authorize_url: str,
    redirect_uri: str,
    scopes: list[str],
    state: str,
    code_verifier: str,
) -> str:
    """Where to send the browser. ``prompt=consent`` asks the user every time, which is what a
    connect is, and is what providers such as Google need to issue a refresh token again;
    providers that do not know the parameter ignore it (RFC 6749 section 3.1)."""
    async with AsyncOAuth2Client(
        client_id,
        redirect_uri=redirect_uri,
        scope=" ".join(scopes) or None,
        code_challenge_method="S256",
    ) as session:
        url, _ = session.create_authorization_url(
            authorize_url, state=state, code_verifier=code_verifier, prompt="consent"
        )
    return url


async def exchange_code(
    client: Client,
    *,
    token_url: str,
    code: str,
    code_verifier: str,
    redirect_uri: str,
    timeout_seconds: float,
) -> dict[str, Any]:
    async with _session(client, timeout=timeout_seconds, redirect_uri=redirect_uri) as session:
        return await _tokens(
            session.fetch_token(
                token_url, grant_type="authorization_code", code=code, code_verifier=code_verifier
            )
        )


async def refresh(
    client: Client, *, token_url: str, refresh_token: str, timeout_seconds: float
) -> dict[str, Any]:
    """New tokens for a refresh token. Without a new refresh token in the answer the old one
    stays valid (authlib puts it back in the result)."""
    async with _session(client, timeout=timeout_seconds) as session:
        return await _tokens(session.refresh_token(token_url, refresh_token=refresh_token))


async def revoke(
    client: Client, *, revoke_url: str, token: str, hint: str, timeout_seconds: float
) -> str | None:
    """RFC 7009 revocation; ``None`` when the provider accepted it, else why not."""
    try:
        async with _session(client, timeout=timeout_seconds) as session:
            response = await session.revoke_token(revoke_url, token=token, token_type_hint=hint)
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
