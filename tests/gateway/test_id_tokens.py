"""The ID token checks of sign-in, with tokens this test signs itself and a provider's
discovery and keys served over real HTTP on loopback: what a real provider never sends
(another audience, an expired token, ``alg: none``, a symmetric signature, an unknown key)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from gateway.oidc.provider import Provider, SignInFailed
from gateway.settings import GatewaySettings, OidcProviderSettings
from seedos_cli.deployment_keys import ServiceKeys

CLIENT = "seedos-gateway"


class FakeIssuerKeys:
    def __init__(self) -> None:
        self.keys = [RSAKey.generate_key(2048, parameters={"kid": "k1"})]
        self.jwks_hits = 0
        self.suffix = ""  # what the issuer's URL ends with (Auth0's end in "/")


@pytest.fixture
async def issuer() -> AsyncIterator[tuple[str, FakeIssuerKeys]]:
    state = FakeIssuerKeys()
    app = web.Application()
    base: dict[str, str] = {}

    async def discovery(_request: web.Request) -> web.Response:
        return web.json_response({
            "issuer": base["url"] + state.suffix, "authorization_endpoint": base["url"] + "/auth",
            "token_endpoint": base["url"] + "/token", "jwks_uri": base["url"] + "/jwks",
            "id_token_signing_alg_values_supported": ["RS256", "HS256", "none"],
        })  # fmt: skip

    async def jwks(_request: web.Request) -> web.Response:
        state.jwks_hits += 1
        return web.json_response({"keys": [k.as_dict(private=False) for k in state.keys]})

    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base["url"] = f"http://127.0.0.1:{port}"
    try:
        yield base["url"], state
    finally:
        await runner.cleanup()


def _provider(url: str) -> Provider:
    conf = OidcProviderSettings(issuer=url, client_id=CLIENT, client_secret="s")
    return Provider("test", conf, redirect_uri="http://127.0.0.1/auth/callback", timeout=5)


def _claims(url: str, **changes: object) -> dict:
    now = int(time.time())
    claims = {"iss": url, "sub": "alice", "aud": CLIENT, "iat": now, "exp": now + 300,
              "nonce": "n-1", "email": "alice@example.com", "email_verified": True}  # fmt: skip
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(key, claims: dict, alg: str = "RS256", kid: str | None = "k1") -> str:
    header = {"alg": alg, **({"kid": kid} if kid else {})}
    return jwt.encode(header, claims, key, algorithms=[alg])


async def test_a_good_token_gives_the_person(issuer) -> None:
    url, keys = issuer
    p = _provider(url)
    try:
        claims = await p.verify(_sign(keys.keys[0], _claims(url)), nonce="n-1")
    finally:
        await p.close()
    assert (claims.subject, claims.email, claims.email_verified) == (
        "alice",
        "alice@example.com",
        True,
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "another-client"},
        {"iss": "https://evil.example"},
        {"exp": int(time.time()) - 120},  # past the 60 s leeway
        {"nonce": "n-2"},
        {"nonce": None},
        {"sub": None},
        {"aud": [CLIENT, "other"]},  # several audiences without azp naming us
    ],
    ids=["audience", "issuer", "expired", "nonce", "no-nonce", "no-subject", "azp"],
)
async def test_tokens_not_for_this_sign_in_are_refused(issuer, changes) -> None:
    url, keys = issuer
    p = _provider(url)
    try:
        with pytest.raises(SignInFailed) as refused:
            await p.verify(_sign(keys.keys[0], _claims(url, **changes)), nonce="n-1")
    finally:
        await p.close()
    assert refused.value.code == "id_token_invalid"


async def test_unsigned_and_symmetric_tokens_are_refused_whatever_discovery_says(issuer) -> None:
    url, _keys = issuer
    p = _provider(url)
    claims = _claims(url)
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    unsigned = (header + b"." + body + b".").decode()
    # signed with the client secret, which the provider's discovery lists as allowed
    symmetric = jwt.encode({"alg": "HS256"}, claims, OctKey.import_key("s" * 32),
                           algorithms=["HS256"])  # fmt: skip
    try:
        for token in (unsigned, symmetric):
            with pytest.raises(SignInFailed):
                await p.verify(token, nonce="n-1")
    finally:
        await p.close()


async def test_an_unknown_key_is_fetched_again_at_most_once_a_minute(issuer) -> None:
    url, keys = issuer
    p = _provider(url)
    try:
        await p.verify(_sign(keys.keys[0], _claims(url)), nonce="n-1")
        assert keys.jwks_hits == 1
        # the provider rotates its key: a token with the new kid makes one fetch ...
        keys.keys = [RSAKey.generate_key(2048, parameters={"kid": "k2"})]
        await p.verify(_sign(keys.keys[0], _claims(url), kid="k2"), nonce="n-1")
        assert keys.jwks_hits == 2
        # ... and a token naming a key nobody has does not make one per token
        forged = RSAKey.generate_key(2048, parameters={"kid": "k3"})
        for _ in range(5):
            with pytest.raises(SignInFailed):
                await p.verify(_sign(forged, _claims(url), kid="k3"), nonce="n-1")
        assert keys.jwks_hits == 2
    finally:
        await p.close()


def test_settings_refuse_what_would_be_unsafe(monkeypatch) -> None:
    base = {"SEEDOS_ENV": "production", **ServiceKeys.generate().env()}
    for name, value in base.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SEEDOS_GATEWAY_DEV_SIGN_IN", "true")
    with pytest.raises(ValueError, match="DEV_SIGN_IN"):
        GatewaySettings()
    monkeypatch.delenv("SEEDOS_GATEWAY_DEV_SIGN_IN")
    assert GatewaySettings().dev_sign_in is False
    monkeypatch.setenv("SEEDOS_PUBLIC_URL", "http://integrations.example.com")
    with pytest.raises(ValueError, match="https"):
        GatewaySettings()
    monkeypatch.setenv("SEEDOS_PUBLIC_URL", "https://integrations.example.com")
    monkeypatch.setenv(
        "SEEDOS_GATEWAY_OIDC_PROVIDERS",
        json.dumps({"p": {"issuer": "http://idp.example.com", "client_id": "c"}}),
    )
    with pytest.raises(ValueError, match="https"):
        GatewaySettings()
    monkeypatch.setenv(
        "SEEDOS_GATEWAY_OIDC_PROVIDERS",
        json.dumps(
            {"p": {"issuer": "https://idp.example.com", "client_id": "c", "scopes": ["email"]}}
        ),
    )
    with pytest.raises(ValueError, match="openid"):
        GatewaySettings()


async def test_an_issuer_ending_in_a_slash_is_matched_as_written(issuer) -> None:
    url, keys = issuer
    keys.suffix = "/"
    p = _provider(url + "/")
    try:
        claims = await p.verify(_sign(keys.keys[0], _claims(url + "/")), nonce="n-1")
        assert claims.issuer == url + "/"
        with pytest.raises(SignInFailed):  # and only as written
            await p.verify(_sign(keys.keys[0], _claims(url)), nonce="n-1")
    finally:
        await p.close()
