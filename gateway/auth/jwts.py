"""Bearer JWTs from the identity providers configured in ``SEEDOS_GATEWAY_JWT_ISSUERS`` (Supabase
Auth first): which issuer a token names, its signature by that issuer's keys (an allowlist of
algorithms per issuer: never ``none``, HS256 only with a Supabase legacy JWT secret configured),
and ``iss``, ``aud``, ``exp`` and ``nbf`` with the issuer's leeway (at most 60 s).

What a verified token says is a :class:`Verified`: the issuer, the subject, when it expires and,
for an *authoritative* issuer, the tenant and role its claims name (Supabase's from
``app_metadata``, which only the project's service role can write; never ``user_metadata``,
which the user can). Who that is here, the authenticator resolves (:mod:`gateway.auth.jwt_callers`).

Every refusal is a :class:`TokenRefused` with a bounded ``reason`` (the failure metric's
label); the token itself is never logged nor sent back.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import Key, KeySet, OctKey

from common.errors import Unauthorized
from gateway.auth import jwks
from gateway.settings import GatewaySettings, JwtIssuerSettings

MAX_TOKEN_CHARS = 8192
# header.payload.signature, base64url; an unsigned token's signature is empty (and refused)
_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class TokenRefused(Unauthorized):
    code, title = "invalid_token", "Invalid bearer token"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail, reason=reason)
        self.reason = reason


def looks_like_jwt(token: str) -> bool:
    return len(token) <= MAX_TOKEN_CHARS and _SHAPE.fullmatch(token) is not None


@dataclass(frozen=True, slots=True)
class Verified:
    """What a verified token says. ``tenant``: the tenant the caller acts in (an
    authoritative issuer's claim; for a directory issuer the one the request chose, if any),
    as a tenant's id or slug; ``role``: an authoritative issuer's role claim."""

    issuer: str  # the issuer's name in the settings
    subject: str
    expires: int  # exp, seconds since the epoch
    tenant: str | None = None
    role: str | None = None


class Issuer:
    def __init__(self, name: str, settings: JwtIssuerSettings, *, http: httpx.AsyncClient):
        self.name = name
        self.settings = settings
        self.authoritative = settings.mode == "authoritative"
        self._http = http
        self._keys = jwks.KeyCache(self._fetch_keys, provider=name)
        self._secret = (
            OctKey.import_key(settings.hs256_secret.get_secret_value())
            if settings.hs256_secret
            else None
        )
        self._claims = jwt.JWTClaimsRegistry(
            leeway=settings.leeway_seconds,
            iss={"essential": True, "value": settings.issuer},
            sub={"essential": True},
            aud={"essential": True, "value": settings.expected_audience},
            exp={"essential": True},
        )

    async def verify(self, token: str, header: dict[str, Any], *, tenant: str | None) -> Verified:
        alg = header.get("alg")
        if alg not in self.settings.allowed_algorithms:
            raise TokenRefused(
                "wrong_algorithm", f"issuer {self.name} does not sign with {str(alg)[:20]!r}"
            )
        key: Key | KeySet
        if alg == "HS256":
            assert self._secret is not None  # the settings allow HS256 only with a secret
            key = self._secret
        else:
            key = await self._keys.for_kid(_text(header.get("kid")))
        try:
            claims = jwt.decode(token, key, algorithms=[alg]).claims
        except InvalidKeyIdError:
            raise TokenRefused(
                "unknown_kid", f"the token is signed with a key issuer {self.name} does not have"
            ) from None
        except BadSignatureError:
            raise TokenRefused("bad_signature", "the token's signature does not verify") from None
        except (JoseError, ValueError, TypeError):
            raise TokenRefused("malformed", "the token cannot be read") from None
        self._check(claims)
        if not self.authoritative:
            return Verified(self.name, claims["sub"], int(claims["exp"]), tenant=tenant)
        tenant_path, role_path = self.settings.claims
        return Verified(
            self.name, claims["sub"], int(claims["exp"]),
            tenant=_text(_at(claims, tenant_path)), role=_text(_at(claims, role_path)),
        )  # fmt: skip

    def _check(self, claims: dict[str, Any]) -> None:
        try:
            self._claims.validate(claims)
        except ExpiredTokenError:
            raise TokenRefused("expired", "the token has expired") from None
        except MissingClaimError as exc:
            raise TokenRefused("missing_claim", f"the token lacks {exc.claim}") from None
        except InvalidClaimError as exc:
            reason, detail = _INVALID.get(exc.claim, ("invalid_claim", f"bad {exc.claim}"))
            raise TokenRefused(reason, detail) from None
        if not isinstance(claims["sub"], str) or not 1 <= len(claims["sub"]) <= 255:
            raise TokenRefused("invalid_claim", "the token's subject is not usable")

    async def _fetch_keys(self) -> dict[str, Any]:
        url = self.settings.keys_url
        if url is None:  # an oidc issuer's discovery names them
            issuer = self.settings.issuer.rstrip("/")
            meta = await jwks.fetch_json(
                self._http, issuer + "/.well-known/openid-configuration", provider=self.name
            )
            if meta.get("issuer") != self.settings.issuer:
                raise jwks.ProviderUnavailable(f"provider {self.name}'s discovery does not fit")
            url = jwks.keys_url(meta, provider=self.name)
        return await jwks.fetch_json(self._http, url, provider=self.name)

    async def close(self) -> None:
        await self._keys.close()


_INVALID = {
    "aud": ("wrong_audience", "the token is for another audience"),
    "iss": ("wrong_issuer", "the token's issuer is not the configured one"),
    "nbf": ("not_yet_valid", "the token is not valid yet"),
    "iat": ("not_yet_valid", "the token was issued in the future"),
    "exp": ("invalid_claim", "the token's exp is not a time"),
}


class Issuers:
    """Every configured issuer, found by a token's ``iss``."""

    def __init__(self, settings: dict[str, JwtIssuerSettings], *, timeout: float) -> None:
        # one client for every issuer's keys; a short timeout: a caller waits on it
        self._http = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self.by_name = {n: Issuer(n, s, http=self._http) for n, s in settings.items()}
        self._by_iss = {i.settings.issuer: i for i in self.by_name.values()}

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> Issuers:
        return cls(settings.jwt_issuers, timeout=settings.jwt_timeout_seconds)

    def __bool__(self) -> bool:
        return bool(self.by_name)

    async def close(self) -> None:
        for issuer in self.by_name.values():
            await issuer.close()
        await self._http.aclose()

    async def verify(self, token: str, *, tenant: str | None = None) -> Verified:
        """The verified token (``tenant``: the tenant the request asks to act in), or
        :class:`TokenRefused`; 503 when its issuer's keys cannot be fetched."""
        header, claims = _unverified(token)
        iss = claims.get("iss")
        if iss is not None and not isinstance(iss, str):  # a list or object: no issuer's name
            raise TokenRefused("malformed", "the token's iss is not a string")
        issuer = self._by_iss.get(iss) if iss is not None else None
        if issuer is None:
            raise TokenRefused("unknown_issuer", "the token's issuer is not accepted here")
        return await issuer.verify(token, header, tenant=tenant)

    def still_valid(self, verified: Verified) -> Issuer:
        """The issuer of an earlier verified token, while it has not expired (an open
        WebSocket's recheck): else :class:`TokenRefused`."""
        issuer = self.by_name.get(verified.issuer)
        if issuer is None:
            raise TokenRefused("unknown_issuer", "the token's issuer is not accepted any more")
        if verified.expires <= time.time():
            raise TokenRefused("expired", "the token has expired")
        return issuer


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims, read before anything is verified (to choose the issuer)."""
    try:
        head, body, _ = token.split(".")
        header, claims = json.loads(_b64(head)), json.loads(_b64(body))
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        raise TokenRefused("malformed", "the bearer token is not a readable JWT") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenRefused("malformed", "the bearer token is not a readable JWT")
    return header, claims


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _at(claims: dict[str, Any], path: str) -> object:
    """The claim at a dotted path (``app_metadata.role``), or None."""
    value: object = claims
    for name in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    return value


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 255 else None
