"""Services accept only internal tokens minted for them, by an issuer they trust, for what that
issuer may ask, on every route but health/metrics."""

from __future__ import annotations

import base64
import json
import time
import uuid

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey

from common import service_keys
from common.errors import Unauthorized
from common.internal_auth import ANYTHING, Grant, Principal, TokenSigner, TokenVerifier
from tests.support import make_tenant


def _claims(tenant_id: uuid.UUID, *, issued: int, ttl: int, iss: str = "gateway") -> dict:
    return {"iss": iss, "aud": "connector_service", "sub": "x", "tid": str(tenant_id),
            "role": "viewer", "iat": issued, "exp": issued + ttl}  # fmt: skip


def _part(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _unsigned(claims: dict) -> str:
    """An `alg: none` token, the classic forgery."""
    return f"{_part({'alg': 'none', 'typ': 'JWT'})}.{_part(claims)}."


def _signed(key, claims: dict, *, kid: str | None = None, alg: str = "Ed25519") -> str:
    header = {"alg": alg, "typ": "JWT", **({"kid": kid} if kid else {})}
    return jwt.encode(header, claims, key, algorithms=[alg])


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def test_services_refuse_calls_without_a_valid_token(suite, dsn):
    t = await make_tenant(dsn)
    principal = Principal(tenant_id=t.tenant_id, subject="test", role="viewer")
    right = suite.keys.signer()
    gateway_key = suite.keys.private["gateway"]
    stranger = service_keys.generate("gateway")  # a key of the right shape nobody published
    now = int(time.time())
    cases = {
        "no token": None,
        "api key instead": t.key,
        "other audience": right.mint(principal, audience="marketplace_service"),
        "unpublished key": TokenSigner(key=stranger, issuer="gateway").mint(
            principal, audience="connector_service"
        ),
        "expired": _signed(
            gateway_key, _claims(t.tenant_id, issued=now - 600, ttl=300), kid=gateway_key.kid
        ),
        "unsigned": _unsigned(_claims(t.tenant_id, issued=now, ttl=60)),
        "the old shared HMAC": _signed(
            OctKey.import_key("k" * 48), _claims(t.tenant_id, issued=now, ttl=60), alg="HS256"
        ),
        # a ten-year token, validly signed: longer than any internal token may live
        "ten years": _signed(
            gateway_key, _claims(t.tenant_id, issued=now, ttl=315_360_000), kid=gateway_key.kid
        ),
        "just over the maximum lifetime": _signed(
            gateway_key, _claims(t.tenant_id, issued=now, ttl=301), kid=gateway_key.kid
        ),
        "issued in the future": _signed(
            gateway_key, _claims(t.tenant_id, issued=now + 120, ttl=60), kid=gateway_key.kid
        ),
        # marketplace_service's key vouching for the gateway: a key speaks for its issuer only
        "another issuer's key": _signed(
            suite.keys.private["marketplace_service"],
            _claims(t.tenant_id, issued=now, ttl=60),
            kid=suite.keys.private["marketplace_service"].kid,
        ),
    }
    async with httpx.AsyncClient(base_url=suite.connector_service) as client:
        for name, token in cases.items():
            for path in (
                "/api/v1/integrations",
                f"/api/v1/integrations/{uuid.uuid4()}",
                "/openapi.json",
                "/docs",
            ):
                r = await client.get(path, headers=_auth(token))
                assert r.status_code == 401, (name, path, r.status_code)
                assert r.headers["content-type"] == "application/problem+json"
        # health and metrics stay open; a right token works, and so does one at the maximum
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await client.get(path)).status_code == 200
        ok = right.mint(principal, audience="connector_service")
        assert (await client.get("/api/v1/integrations", headers=_auth(ok))).status_code == 200
        longest = _signed(gateway_key, _claims(t.tenant_id, issued=now, ttl=300),
                          kid=gateway_key.kid)  # fmt: skip
        r = await client.get("/api/v1/integrations", headers=_auth(longest))
        assert r.status_code == 200
    async with httpx.AsyncClient(base_url=suite.marketplace_service) as client:
        r = await client.get("/api/v1/marketplace/connectors")
        assert r.status_code == 401
        token = right.mint(principal, audience="connector_service")
        r = await client.get("/api/v1/marketplace/connectors", headers=_auth(token))
        assert r.status_code == 401, "a token for connector_service must not open marketplace"
        token = right.mint(principal, audience="marketplace_service")
        r = await client.get("/api/v1/marketplace/connectors", headers=_auth(token))
        assert r.status_code == 200


async def test_marketplace_may_only_install_and_uninstall(suite, dsn):
    """A token from marketplace_service (a compromised one, say) opens only connector_service's
    install and uninstall: reading, changing or connecting anything else is refused, and
    marketplace_service itself accepts no token of its own or of connector_service's."""
    t = await make_tenant(dsn, role="admin")
    principal = Principal(tenant_id=t.tenant_id, subject="apikey:x", role="admin")
    market = suite.keys.signer("marketplace_service")
    token = market.mint(principal, audience="connector_service")
    refused = [
        ("GET", "/api/v1/integrations"),
        ("GET", f"/api/v1/integrations/{uuid.uuid4()}"),
        ("PATCH", f"/api/v1/integrations/{uuid.uuid4()}"),
        ("POST", f"/api/v1/integrations/{uuid.uuid4()}/actions/send"),
        ("POST", f"/api/v1/integrations/{uuid.uuid4()}/disable"),
        ("DELETE", f"/api/v1/integrations/{uuid.uuid4()}/records/contacts/1"),
        ("GET", "/openapi.json"),
    ]
    async with httpx.AsyncClient(base_url=suite.connector_service) as client:
        for method, path in refused:
            r = await client.request(method, path, headers=_auth(token), json={})
            assert r.status_code == 403, (method, path, r.status_code, r.text)
            assert r.json()["code"] == "issuer_not_allowed"
        # what it may ask reaches the route (which answers by its own rules)
        r = await client.request("DELETE", f"/api/v1/integrations/{uuid.uuid4()}",
                                 headers=_auth(token))  # fmt: skip
        assert r.status_code == 404, r.text
        r = await client.post("/api/v1/integrations", headers=_auth(token),
                              json={"connector": "no-such-connector"})  # fmt: skip
        assert r.status_code in (404, 422), r.text
    async with httpx.AsyncClient(base_url=suite.marketplace_service) as client:
        own = market.mint(principal, audience="marketplace_service")
        r = await client.get("/api/v1/marketplace/connectors", headers=_auth(own))
        assert r.status_code == 401, "marketplace_service trusts only the gateway"


async def test_service_checks_role_from_the_token(suite, dsn):
    t = await make_tenant(dsn)
    token = suite.keys.signer().mint(
        Principal(tenant_id=t.tenant_id, subject="x", role="nobody"), audience="connector_service"
    )
    async with httpx.AsyncClient(base_url=suite.connector_service) as client:
        r = await client.get("/api/v1/integrations", headers=_auth(token))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"


def test_rotation_accepts_both_keys_until_the_old_one_is_retired():
    """Step by step as `seedos keys add/promote/retire-signing-key` does it: while both keys
    are published, tokens of either verify; once the old one is retired, its tokens do not."""
    old, new = service_keys.generate("gateway"), service_keys.generate("gateway")
    principal = Principal(tenant_id=uuid.uuid4(), subject="x", role="viewer")
    old_token = TokenSigner(key=old, issuer="gateway").mint(principal, audience="a")
    new_token = TokenSigner(key=new, issuer="gateway").mint(principal, audience="a")
    both = service_keys.PublicKeys.of({"gateway": [old, new]})
    published = service_keys.PublicKeys.parse(both.to_json())  # as the services read it
    verifier = TokenVerifier(public_keys=published, audience="a")
    assert verifier.verify(old_token).tenant_id == verifier.verify(new_token).tenant_id
    retired = TokenVerifier(public_keys=published.without(old.kid), audience="a")
    assert retired.verify(new_token).subject == "x"
    with pytest.raises(Unauthorized, match="key not trusted"):
        retired.verify(old_token)


def test_verifier_trusts_only_the_issuers_it_is_told_to():
    gateway, market = service_keys.generate("gateway"), service_keys.generate("marketplace_service")
    keys = service_keys.PublicKeys.of({"gateway": [gateway], "marketplace_service": [market]})
    principal = Principal(tenant_id=uuid.uuid4(), subject="x", role="viewer")
    token = TokenSigner(key=market, issuer="marketplace_service").mint(principal, audience="a")
    with pytest.raises(Unauthorized):
        TokenVerifier(public_keys=keys, audience="a").verify(token)  # the gateway's only
    trusted = TokenVerifier(
        public_keys=keys, audience="a",
        trust={"gateway": ANYTHING, "marketplace_service": Grant(("POST", "/things"))},
    )  # fmt: skip
    seen = trusted.verify(token)
    assert seen.issuer == "marketplace_service"
    assert trusted.allowed(seen, "POST", "/things")
    assert not trusted.allowed(seen, "POST", "/things/1")
    assert not trusted.allowed(seen, "GET", "/things")


def test_signer_reuses_a_token_briefly_per_principal_and_audience():
    key = service_keys.generate("gateway")
    signer = TokenSigner(key=key, issuer="gateway", ttl_seconds=60, reuse_seconds=5)
    a = Principal(tenant_id=uuid.uuid4(), subject="a", role="viewer")
    first = signer.mint(a, audience="x")
    assert signer.mint(a, audience="x") == first
    assert signer.mint(a, audience="y") != first
    assert signer.mint(Principal(tenant_id=a.tenant_id, subject="a", role="editor"),
                       audience="x") != first  # fmt: skip
    with pytest.raises(ValueError):
        TokenSigner(key=key, issuer="gateway", ttl_seconds=5, reuse_seconds=5)


def test_public_keys_refuse_a_private_key_or_a_foreign_algorithm():
    key = service_keys.generate("gateway")
    private = {"gateway": {"keys": [key.as_dict(private=True)]}}
    with pytest.raises(ValueError, match="private key"):
        service_keys.PublicKeys.parse(json.dumps(private))
    rsa = {"gateway": {"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "r"}]}}
    with pytest.raises(ValueError, match="Ed25519"):
        service_keys.PublicKeys.parse(json.dumps(rsa))
    twice = {"gateway": {"keys": [key.as_dict(private=False)]},
             "marketplace_service": {"keys": [key.as_dict(private=False)]}}  # fmt: skip
    with pytest.raises(ValueError, match="twice"):
        service_keys.PublicKeys.parse(json.dumps(twice))
