"""An identity provider's keys as :mod:`gateway.auth.jwks` holds them, with the provider down or
slow: a token whose key is held never waits for it, callers share one fetch, a failed fetch
backs off for a minute (before the first good one too), and what a provider sends is bounded
(a document of at most 1 MiB, a ``jwks_uri`` from discovery that is https).

A plain async function stands in for a provider that hangs or fails on cue; documents are
served over real HTTP on 127.0.0.1 (:class:`tests.gateway.test_bearer_jwts.KeyServer`), and a
discovery naming a non-loopback plain-http ``jwks_uri`` by an ``httpx.MockTransport`` (so that
nothing would leave the machine were the URL fetched)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from common.errors import GatewayTimeout
from gateway.auth import jwks, jwts
from gateway.oidc.provider import Provider
from gateway.settings import JwtIssuerSettings, OidcProviderSettings
from tests.gateway.test_bearer_jwts import KeyServer

KEY = ECKey.generate_key("P-256", parameters={"kid": "good"})


class FlakyProvider:
    """A provider's JWKS endpoint: answers the first ``good`` fetches, then fails (after
    ``hang`` is set, when ``hang`` is given); counts the fetches."""

    def __init__(self, *, good: int, hang: asyncio.Event | None = None) -> None:
        self.good, self.hang = good, hang
        self.fetches = 0
        self.started = asyncio.Event()  # a failing fetch has begun

    async def __call__(self) -> dict:
        self.fetches += 1
        if self.fetches <= self.good:
            return KeySet([KEY]).as_dict(private=False)
        self.started.set()
        if self.hang is not None:
            await self.hang.wait()
            raise GatewayTimeout("provider x did not answer in time")
        raise jwks.ProviderUnavailable("provider x is unavailable")


async def test_a_held_key_never_waits_for_a_slow_provider_and_made_up_ids_share_one_fetch():
    hang = asyncio.Event()
    provider = FlakyProvider(good=1, hang=hang)
    cache = jwks.KeyCache(provider, provider="x", max_age=0)  # stale at once (as after 10 min)
    assert (await cache.for_kid("good")).get_by_kid("good")
    try:
        made_up = [asyncio.create_task(cache.for_kid(f"made-up-{i}")) for i in range(10)]
        async with asyncio.timeout(2):
            await provider.started.wait()  # the provider hangs now
            keys = await cache.for_kid("good")  # the held key: no waiting on the provider
        assert keys.get_by_kid("good") and not any(t.done() for t in made_up)
    finally:
        hang.set()
    results = await asyncio.gather(*made_up, return_exceptions=True)
    assert all(isinstance(r, GatewayTimeout | jwks.ProviderUnavailable) for r in results)
    assert provider.fetches == 2  # the first, and one for every made-up id
    # backing off: a made-up id is a fast 503 saying when to come back, and fetches nothing
    with pytest.raises(jwks.ProviderUnavailable) as refused:
        await cache.for_kid("made-up-again")
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    assert (await cache.for_kid("good")).get_by_kid("good")
    assert provider.fetches == 2


async def test_a_failed_fetch_backs_off_before_the_first_good_one() -> None:
    provider = FlakyProvider(good=0)
    cache = jwks.KeyCache(provider, provider="x")
    for _ in range(3):
        with pytest.raises(jwks.ProviderUnavailable):
            await cache.for_kid("good")
    assert provider.fetches == 1


async def test_concurrent_first_uses_share_one_fetch() -> None:
    provider = FlakyProvider(good=1)
    cache = jwks.KeyCache(provider, provider="x")
    found = await asyncio.gather(*(cache.for_kid("good") for _ in range(5)))
    assert all(k.get_by_kid("good") for k in found) and provider.fetches == 1


@pytest.fixture(scope="module")
def server() -> Iterator[KeyServer]:
    keys = KeyServer()
    try:
        yield keys
    finally:
        keys.stop()


@pytest.mark.parametrize(("size", "sized"), [(jwks.MAX_DOCUMENT_BYTES - 100, True),
                                             (jwks.MAX_DOCUMENT_BYTES + 1, True),
                                             (jwks.MAX_DOCUMENT_BYTES + 1, False)])  # fmt: skip
async def test_a_key_document_is_read_up_to_one_mib(server, size, sized) -> None:
    document = {"keys": [KEY.as_dict(private=False)], "pad": ""}
    document["pad"] = "x" * (size - len(json.dumps(document)))
    server.documents["/big"], server.sized = document, sized
    async with httpx.AsyncClient(timeout=5) as http:
        fetch = jwks.fetch_json(http, server.url + "/big", provider="x")
        if size <= jwks.MAX_DOCUMENT_BYTES:
            assert (await fetch)["keys"]
        else:
            with pytest.raises(jwks.ProviderUnavailable, match="more than 1048576 bytes"):
                await fetch


def _discovery(issuer: str, jwks_uri: str, fetched: list[str]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        fetched.append(str(request.url))
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(200, json={
                "issuer": issuer, "jwks_uri": jwks_uri, "authorization_endpoint": issuer + "/a",
                "token_endpoint": issuer + "/t",
            })  # fmt: skip
        return httpx.Response(200, json=KeySet([KEY]).as_dict(private=False))

    return httpx.MockTransport(answer)


@pytest.mark.parametrize("jwks_uri", ["http://idp.example/keys", "ftp://idp.example/keys", "/k"])
async def test_a_discovered_jwks_uri_must_be_https(jwks_uri) -> None:
    issuer = "https://idp.example"
    fetched: list[str] = []
    settings = JwtIssuerSettings(kind="oidc", issuer=issuer, audience="api")
    async with httpx.AsyncClient(transport=_discovery(issuer, jwks_uri, fetched)) as http:
        bearer = jwts.Issuer("idp", settings, http=http)
        now = int(time.time())
        claims = {"iss": issuer, "sub": "s", "aud": "api", "exp": now + 60}
        token = jwt.encode({"alg": "ES256", "kid": "good"}, claims, KEY, algorithms=["ES256"])
        with pytest.raises(jwks.ProviderUnavailable, match="no https jwks_uri"):
            await bearer.verify(token, {"alg": "ES256", "kid": "good"}, tenant=None)
    # sign-in's provider the same
    oidc = OidcProviderSettings(issuer=issuer, client_id="c")
    provider = Provider("idp", oidc, redirect_uri="https://app.example/cb", timeout=1,
                        transport=_discovery(issuer, jwks_uri, fetched))  # fmt: skip
    try:
        with pytest.raises(jwks.ProviderUnavailable, match="no https jwks_uri"):
            await provider.verify(token, nonce="n")
    finally:
        await provider.close()
    assert all(url.endswith("/.well-known/openid-configuration") for url in fetched), fetched


def test_the_discovered_jwks_uri_rule() -> None:
    ok = ["https://idp.example/keys", "http://127.0.0.1:8080/keys", "http://localhost/k",
          "http://[::1]:9/k"]  # fmt: skip
    assert [jwks.keys_url({"jwks_uri": u}, provider="x") for u in ok] == ok
    for bad in ["http://idp.example/keys", "http://10.0.0.1/k", None, 5, "https:///k"]:
        with pytest.raises(jwks.ProviderUnavailable):
            jwks.keys_url({"jwks_uri": bad}, provider="x")
