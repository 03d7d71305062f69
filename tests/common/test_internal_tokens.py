"""Services accept only internal tokens minted for them, on every route but health/metrics."""

from __future__ import annotations

import base64
import json
import time
import uuid

import httpx
from joserfc import jwt
from joserfc.jwk import OctKey

from common.internal_auth import Principal, TokenSigner
from tests.support import make_tenant


def _claims(tenant_id: uuid.UUID, *, issued: int, ttl: int) -> dict:
    return {"iss": "gateway", "aud": "connector_service", "sub": "x", "tid": str(tenant_id),
            "role": "viewer", "iat": issued, "exp": issued + ttl}  # fmt: skip


def _unsigned(claims: dict) -> str:
    """An `alg: none` token, the classic forgery."""

    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _signer(key: str, ttl: int = 60) -> TokenSigner:
    return TokenSigner(key=key, issuer="gateway", ttl_seconds=ttl)


async def test_services_refuse_calls_without_a_valid_token(suite, dsn):
    t = await make_tenant(dsn)
    principal = Principal(tenant_id=t.tenant_id, subject="test", role="viewer")
    right = _signer(suite.internal_key)
    cases = {
        "no token": None,
        "api key instead": t.key,
        "other audience": right.mint(principal, audience="marketplace_service"),
        "wrong signing key": _signer("k" * 48).mint(principal, audience="connector_service"),
        "expired": jwt.encode(
            {"alg": "HS256"},
            _claims(t.tenant_id, issued=int(time.time()) - 600, ttl=300),
            OctKey.import_key(suite.internal_key),
        ),
        "unsigned": _unsigned(_claims(t.tenant_id, issued=int(time.time()), ttl=60)),
    }
    async with httpx.AsyncClient(base_url=suite.connector_service) as client:
        for name, token in cases.items():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            for path in (
                "/api/v1/integrations",
                f"/api/v1/integrations/{uuid.uuid4()}",
                "/openapi.json",
                "/docs",
            ):
                r = await client.get(path, headers=headers)
                assert r.status_code == 401, (name, path, r.status_code)
                assert r.headers["content-type"] == "application/problem+json"
        # health and metrics stay open; a right token works
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await client.get(path)).status_code == 200
        ok = right.mint(principal, audience="connector_service")
        r = await client.get("/api/v1/integrations", headers={"Authorization": f"Bearer {ok}"})
        assert r.status_code == 200
    async with httpx.AsyncClient(base_url=suite.marketplace_service) as client:
        r = await client.get("/api/v1/marketplace/connectors")
        assert r.status_code == 401
        token = right.mint(principal, audience="connector_service")
        r = await client.get(
            "/api/v1/marketplace/connectors", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 401, "a token for connector_service must not open marketplace"
        token = right.mint(principal, audience="marketplace_service")
        r = await client.get(
            "/api/v1/marketplace/connectors", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 200


async def test_service_checks_role_from_the_token(suite, dsn):
    t = await make_tenant(dsn)
    token = _signer(suite.internal_key).mint(
        Principal(tenant_id=t.tenant_id, subject="x", role="nobody"), audience="connector_service"
    )
    async with httpx.AsyncClient(base_url=suite.connector_service) as client:
        r = await client.get("/api/v1/integrations", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
