"""Input the review found reaching PostgreSQL or the event loop: each is a clear 4xx now."""

from __future__ import annotations

import base64
import json
import secrets
import time

import httpx

from common.roles import Role
from tests.marketplace_service.test_publish_api import CONNECTORS, ENDPOINT, manifest
from tests.support import make_tenant


def _cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


async def test_nul_and_out_of_range_input_is_422(suite, dsn):
    t = await make_tenant(dsn, role=Role.admin)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        for params in ({"q": "crm\x00"}, {"category": "\x00"},
                       {"cursor": _cursor("a\x00b", "x")},
                       {"sort": "popularity", "cursor": _cursor("99999999999999999999", "a")}):  # fmt: skip
            r = await client.get(CONNECTORS, params=params)
            assert r.status_code == 422, (params, r.text)
        r = await client.patch("/api/v1/tenant", json={"description": "bad\x00text"})
        assert r.status_code == 422
        assert (await client.get("/api/v1/tenant")).json()["description"] != "bad\x00text"


async def test_odd_manifests_are_refused_quickly(suite, dsn):
    publisher = await make_tenant(dsn, role=Role.publisher)
    slug = f"odd-{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=suite.gateway, headers=publisher.headers,
                                 timeout=30) as client:  # fmt: skip
        odd = {**manifest(slug, "1.0.0"), "streams": [{"name": {}}, {"name": {}}]}
        r = await client.post(CONNECTORS, json={"manifest": odd, "endpoint_url": ENDPOINT})
        assert r.status_code == 422 and r.json()["code"] == "invalid_manifest", r.text
        many = {**manifest(slug, "1.0.0"), "streams": [{"name": f"s{i}"} for i in range(50_000)]}
        started = time.monotonic()
        r = await client.post(CONNECTORS, json={"manifest": many, "endpoint_url": ENDPOINT})
        assert r.status_code == 422 and time.monotonic() - started < 10, r.text
        assert (await client.get(f"{CONNECTORS}/{slug}")).status_code == 404
