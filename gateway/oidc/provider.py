"""One configured OpenID provider, as the sign-in uses it: discovery from the issuer URL, the
authorization URL (code + PKCE S256), the code exchange (authlib), and the ID token checked
against the provider's JWKS (joserfc): signature, issuer, audience, expiry and nonce.

Discovery and keys are cached (the keys by :mod:`gateway.auth.jwks`: fetched again when a
token names an unknown key id, at most once a minute; the ``jwks_uri`` must be https). The
provider is the operator's configuration, not a tenant's input, so calls to it are not subject
to the egress rule connectors' calls go through."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import structlog
from authlib.integrations.base_client.errors import OAuthError
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError

from common.authlib_client import AsyncOAuth2Client
from common.errors import GatewayTimeout, SeedosError
from gateway.auth.jwks import KeyCache, ProviderUnavailable, fetch_json, keys_url
from gateway.settings import ASYMMETRIC_ALGORITHMS, OidcProviderSettings

log = structlog.get_logger(component="seedos.gateway.oidc")

LEEWAY_SECONDS = 60
DISCOVERY_TTL_SECONDS = 3600.0


class SignInFailed(SeedosError):
    status, code, title = 400, "sign_in_failed", "Sign-in failed"


@dataclass(frozen=True, slots=True)
class Claims:
    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


class Provider:
    def __init__(
        self,
        name: str,
        settings: OidcProviderSettings,
        *,
        redirect_uri: str,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.redirect_uri = redirect_uri
        self.timeout = timeout
        self._transport = transport
        self._tls = httpx.create_ssl_context()  # certifi's CAs, as httpx uses by default
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=False)
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys = KeyCache(self._fetch_keys, provider=name)
        self._lock = asyncio.Lock()

    @property
    def display_name(self) -> str:
        return self.settings.display_name or self.name

    async def close(self) -> None:
        await self._keys.close()
        await self._http.aclose()

    async def metadata(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._metadata is not None and now - self._metadata_at < DISCOVERY_TTL_SECONDS:
            return self._metadata
        async with self._lock:
            fresh = time.monotonic() - self._metadata_at < DISCOVERY_TTL_SECONDS
            if self._metadata is None or not fresh:
                self._metadata = await self._discover()
                self._metadata_at = time.monotonic()
        return self._metadata

    async def _discover(self) -> dict[str, Any]:
        """The provider's metadata (OpenID Connect Discovery 1.0): its ``issuer`` must be the
        configured one exactly, trailing slash and all, as the ID tokens' ``iss`` will be."""
        issuer = self.settings.issuer
        document = await self._get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
        if document.get("issuer") != issuer:
            raise ProviderUnavailable(f"provider {self.name}'s discovery names another issuer")
        for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(document.get(field), str):
                raise ProviderUnavailable(f"provider {self.name}'s discovery lacks {field}")
        return document

    async def authorization_url(
        self, *, state: str, nonce: str, code_verifier: str, login_hint: str | None = None
    ) -> str:
        meta = await self.metadata()
        extra = {"login_hint": login_hint} if login_hint else {}
        return prepare_grant_uri(
            meta["authorization_endpoint"], self.settings.client_id, "code",
            redirect_uri=self.redirect_uri, scope=" ".join(self.settings.scopes), state=state,
            code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256", nonce=nonce, **extra,
        )  # fmt: skip

    async def exchange(self, *, code: str, code_verifier: str, nonce: str) -> Claims:
        """Exchange the code, then check the ID token; raises :class:`SignInFailed`."""
        meta = await self.metadata()
        client = self._client()
        try:
            token = await client.fetch_token(
                meta["token_endpoint"], code=code, code_verifier=code_verifier,
                redirect_uri=self.redirect_uri,
            )  # fmt: skip
        except OAuthError as exc:
            raise SignInFailed(
                f"the provider refused the code ({exc.error}): sign in again", code="code_refused"
            ) from None
        except httpx.TimeoutException:
            raise GatewayTimeout(f"provider {self.name} did not answer in time") from None
        except httpx.HTTPError as exc:
            log.warning("oidc_exchange_failed", provider=self.name, error=type(exc).__name__)
            raise ProviderUnavailable(f"provider {self.name}: {type(exc).__name__}") from None
        finally:
            await client.aclose()
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SignInFailed("the provider sent no ID token", code="id_token_missing")
        return await self.verify(id_token, nonce=nonce)

    async def verify(self, id_token: str, *, nonce: str) -> Claims:
        meta = await self.metadata()
        # asymmetric algorithms only: an ID token signed with the client secret (HS256) or none
        # is refused whatever the provider advertises
        allowed = [a for a in meta.get("id_token_signing_alg_values_supported", ["RS256"])
                   if a in ASYMMETRIC_ALGORITHMS] or ["RS256"]  # fmt: skip
        try:
            token = jwt.decode(id_token, await self._keys.for_token(id_token), algorithms=allowed)
        except (JoseError, ValueError) as exc:
            raise SignInFailed(
                f"the ID token's signature does not verify ({type(exc).__name__})",
                code="id_token_invalid",
            ) from None
        claims = token.claims
        registry = jwt.JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": self.settings.issuer},
            sub={"essential": True},
            aud={"essential": True, "value": self.settings.client_id},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            reason = getattr(exc, "claim", None) or type(exc).__name__
            raise SignInFailed(
                f"the ID token is not valid here ({reason})", code="id_token_invalid",
                claim=str(reason),
            ) from None  # fmt: skip
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.settings.client_id:
            raise SignInFailed("the ID token was issued to another client", code="id_token_invalid")
        subject = claims["sub"]
        if not isinstance(subject, str) or not 1 <= len(subject) <= 255:
            raise SignInFailed("the ID token's subject is not usable", code="id_token_invalid")
        email = claims.get("email")
        email = email if isinstance(email, str) and 3 <= len(email) <= 320 else None
        name = claims.get("name")
        return Claims(
            issuer=self.settings.issuer,
            subject=subject,
            email=email,
            email_verified=email is not None and claims.get("email_verified") is True,
            name=name[:200] if isinstance(name, str) else None,
        )

    async def logout_url(self, *, post_logout_redirect_uri: str) -> str | None:
        """RP-initiated logout, where the provider offers it."""
        try:
            meta = await self.metadata()
        except SeedosError:
            return None
        endpoint = meta.get("end_session_endpoint")
        if not isinstance(endpoint, str):
            return None
        query = urlencode({"client_id": self.settings.client_id,
                           "post_logout_redirect_uri": post_logout_redirect_uri})  # fmt: skip
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    def _client(self) -> AsyncOAuth2Client:
        secret = self.settings.client_secret
        return AsyncOAuth2Client(
            client_id=self.settings.client_id,
            client_secret=secret.get_secret_value() if secret else None,
            token_endpoint_auth_method="client_secret_basic" if secret else "none",
            scope=" ".join(self.settings.scopes),
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            timeout=self.timeout,
            # a connection of its own: the code is good once, and a pooled connection the
            # provider closed while idle could fail it with no safe way to send it again (the
            # TLS context is shared: making one costs ~20 ms of CPU)
            transport=self._transport,
            verify=self._tls,
        )

    async def _fetch_keys(self) -> dict[str, Any]:
        meta = await self.metadata()
        return await self._get_json(keys_url(meta, provider=self.name))

    async def _get_json(self, url: str) -> dict[str, Any]:
        return await fetch_json(self._http, url, provider=self.name)
