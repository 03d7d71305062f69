"""The browser sign-in test world works end to end, without the gateway: Chromium (driven by
Playwright) signs a person in at the OpenID provider (server.mjs) for a relying party that is a
bare loopback HTTP server, the code it brings back buys an ID token that names them, and
RP-initiated logout brings them back to the relying party signed out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiohttp import web
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.oidc_people import (
    SIGN_IN_SCOPE,
    sign_in_at_provider,
    sign_out_at_provider,
    web_client,
)

CLIENT = ("smoke-rp", "smoke-rp-secret")
ID_TOKEN_TTL = 120
ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri", "end_session_endpoint")
WAIT = 15  # seconds for the browser to arrive somewhere


@dataclass
class RelyingParty:
    """A loopback HTTP server that records every URL a browser brings to it."""

    base: str = ""
    arrivals: asyncio.Queue[str] = field(default_factory=asyncio.Queue)

    async def arrival(self) -> str:
        return await asyncio.wait_for(self.arrivals.get(), WAIT)


@asynccontextmanager
async def relying_party() -> AsyncIterator[RelyingParty]:
    rp = RelyingParty()

    async def arrive(request: web.Request) -> web.Response:
        await rp.arrivals.put(str(request.url))
        return web.Response(text=f"relying party: {request.path}")

    app = web.Application()
    app.router.add_get("/callback", arrive)
    app.router.add_get("/signed-out", arrive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        rp.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        yield rp
    finally:
        await runner.cleanup()


def authorization_url(endpoint: str, *, redirect_uri: str, verifier: str, state: str, nonce: str):
    return add_params_to_uri(endpoint, {
        "client_id": CLIENT[0], "response_type": "code", "redirect_uri": redirect_uri,
        "scope": SIGN_IN_SCOPE, "state": state, "nonce": nonce,
        "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256",
    })  # fmt: skip


@pytest.mark.timeout(60)
async def test_a_person_signs_in_and_out_at_the_provider_in_chromium(
    new_browser,
    start_oidc_provider,
):
    async with relying_party() as rp, httpx.AsyncClient(timeout=WAIT) as http:
        callback, signed_out = rp.base + "/callback", rp.base + "/signed-out"
        provider = start_oidc_provider(
            clients=[web_client(*CLIENT, redirect_uris=[callback],
                                post_logout_redirect_uris=[signed_out])],
            id_token_ttl=ID_TOKEN_TTL,
        )  # fmt: skip
        endpoints, issuer = provider.endpoints, provider.issuer
        discovery = (await http.get(issuer + "/.well-known/openid-configuration")).json()
        for name in ENDPOINTS:  # server.mjs printed them as the provider publishes them
            assert endpoints[name] == discovery[name]
        assert {"email", "profile"} <= set(discovery["scopes_supported"])

        # alice signs in: the provider's login and consent pages, then back with a code
        verifier, state, nonce = generate_token(48), generate_token(20), generate_token(20)
        alice = await (await new_browser()).new_page()
        await alice.goto(authorization_url(endpoints["authorization_endpoint"],
                         redirect_uri=callback, verifier=verifier, state=state, nonce=nonce))  # fmt: skip
        landed = await sign_in_at_provider(alice, "alice")
        arrived = await rp.arrival()
        assert landed == arrived and arrived.startswith(callback + "?")
        query = parse_qs(urlsplit(arrived).query)
        assert query["state"] == [state] and query["iss"] == [issuer]
        assert await alice.locator("body").inner_text() == "relying party: /callback"

        response = await http.post(endpoints["token_endpoint"], auth=CLIENT, data={
            "grant_type": "authorization_code", "code": query["code"][0],
            "redirect_uri": callback, "code_verifier": verifier,
        })  # fmt: skip
        assert response.status_code == 200, response.text
        id_token = response.json()["id_token"]
        keys = KeySet.import_key_set((await http.get(endpoints["jwks_uri"])).json())
        token = jwt.decode(id_token, keys, algorithms=["RS256"])
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": CLIENT[0]},
            nonce={"essential": True, "value": nonce},
            sub={"essential": True, "value": "alice"},
            email={"essential": True, "value": "alice@example.com"},
            email_verified={"essential": True, "value": True},
            name={"essential": True, "value": "Alice"},
        ).validate(token.claims)
        assert token.claims["exp"] - token.claims["iat"] == ID_TOKEN_TTL

        # a second browser shares nothing with alice's: bob is asked to sign in himself
        bob = await (await new_browser()).new_page()
        await bob.goto(authorization_url(endpoints["authorization_endpoint"], redirect_uri=callback,
                       verifier=generate_token(48), state="bob", nonce="bob"))  # fmt: skip
        assert await bob.locator('input[name="login"]').is_visible()
        await sign_in_at_provider(bob, "bob")
        assert parse_qs(urlsplit(await rp.arrival()).query)["state"] == ["bob"]

        # alice signs out at the provider and comes back to the registered URI with her state
        await alice.goto(add_params_to_uri(endpoints["end_session_endpoint"], {
            "id_token_hint": id_token, "post_logout_redirect_uri": signed_out, "state": "bye",
        }))  # fmt: skip
        landed = await sign_out_at_provider(alice)
        arrived = await rp.arrival()
        assert landed == arrived and arrived == signed_out + "?state=bye"

        # signed out: signing in again asks for her login again
        await alice.goto(authorization_url(endpoints["authorization_endpoint"],
                         redirect_uri=callback, verifier=verifier, state=state, nonce=nonce))  # fmt: skip
        assert await alice.locator('input[name="login"]').is_visible()
