"""Input the review found reaching PostgreSQL or the event loop: each is a clear 4xx now."""

from __future__ import annotations

import base64
import json
import secrets
import time

import httpx

from common.roles import Role
from tests.marketplace_service.test_publish_api import CONNECTORS, ENDPOINT, manifest
from tests.support import add_key, make_tenant


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


async def _publish(client: httpx.AsyncClient, body: dict) -> httpx.Response:
    """Sent as JSON escapes (lone surrogates included, which a UTF-8 encoder refuses)."""
    content = json.dumps(body).encode()
    return await client.post(CONNECTORS, content=content,
                             headers={"content-type": "application/json"})  # fmt: skip


async def test_unstorable_text_and_deep_manifests_are_422_with_paths(suite, dsn):
    publisher = await make_tenant(dsn, role=Role.publisher)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=publisher.headers) as client:
        for bad in ("a\x00b", "a\ud800b"):
            slug = f"text-{secrets.token_hex(3)}"
            good = manifest(slug, "1.0.0")
            cases = {
                "/manifest/display_name": {**good, "display_name": bad},
                "/manifest/description": {**good, "description": bad},
                "/manifest/auth/scopes/0": {**good, "auth": {"scheme": "api_key", "scopes": [bad]}},
                "/manifest/config_schema/description": {
                    **good, "config_schema": {**good["config_schema"], "description": bad}},
                "/manifest/config_schema/properties": {
                    **good, "config_schema": {"type": "object", "properties": {bad: {}}}},
            }  # fmt: skip
            for path, bad_manifest in cases.items():
                r = await _publish(client, {"manifest": bad_manifest, "endpoint_url": ENDPOINT})
                assert r.status_code == 422 and r.json()["code"] == "invalid_manifest", r.text
                assert [e["path"] for e in r.json()["errors"]] == [path], r.text
            for field, value in (("vendor", bad), ("setup_steps", [bad]),
                                 ("endpoint_url", f"{ENDPOINT}/{bad}")):  # fmt: skip
                body = {"manifest": good, "endpoint_url": ENDPOINT, field: value}
                r = await _publish(client, body)
                assert r.status_code == 422 and r.json()["code"] == "validation_failed", r.text
                assert r.json()["errors"][0]["loc"][:2] == ["body", field]
            assert (await client.get(f"{CONNECTORS}/{slug}")).status_code == 404

        slug = f"deep-{secrets.token_hex(3)}"
        deep: dict = {"type": "string"}
        for _ in range(150):
            deep = {"type": "object", "properties": {"a": deep}}
        r = await _publish(client, {"manifest": {**manifest(slug, "1.0.0"), "config_schema": deep},
                                    "endpoint_url": ENDPOINT})  # fmt: skip
        assert r.status_code == 422 and r.json()["code"] == "invalid_manifest", r.text
        [error] = r.json()["errors"]
        assert error["path"].startswith("/manifest/config_schema/properties/a/properties/a/")
        assert "nested deeper than 32" in error["message"]
        assert (await client.get(f"{CONNECTORS}/{slug}")).status_code == 404


async def test_boolean_sub_schemas_publish_and_get_default_steps(suite, dsn):
    publisher = await make_tenant(dsn, role=Role.publisher)
    slug = f"bool-{secrets.token_hex(3)}"
    schema = {"type": "object", "properties": {"tok": True, "off": False}, "required": ["tok"]}
    body = {"manifest": {**manifest(slug, "1.0.0"), "config_schema": schema},
            "endpoint_url": ENDPOINT, "setup_steps": []}  # fmt: skip
    async with httpx.AsyncClient(base_url=suite.gateway, headers=publisher.headers) as client:
        r = await client.post(CONNECTORS, json=body)
        assert r.status_code == 201, r.text
        assert (
            r.json()["setup_steps"][0]
            == f"Install Acme {slug} from the marketplace with its settings (tok)"
        )


async def test_scopes_and_manifest_size_are_bounded(suite, dsn):
    publisher = await make_tenant(dsn, role=Role.publisher)
    slug = f"big-{secrets.token_hex(3)}"
    good = manifest(slug, "1.0.0")
    async with httpx.AsyncClient(base_url=suite.gateway, headers=publisher.headers) as client:
        scopes = {"scheme": "api_key", "scopes": [f"s{i}" for i in range(101)]}
        r = await client.post(CONNECTORS, json={"manifest": {**good, "auth": scopes},
                                                "endpoint_url": ENDPOINT})  # fmt: skip
        assert r.status_code == 422 and r.json()["code"] == "invalid_manifest", r.text
        assert [e["path"] for e in r.json()["errors"]] == ["/manifest/auth/scopes"]
        padded = {**good, "x-notes": ["n" * 1000] * 300}  # about 300 KiB, unknown keys included
        r = await client.post(CONNECTORS, json={"manifest": padded, "endpoint_url": ENDPOINT})
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/manifest", r.text
        assert "at most 262144" in r.json()["errors"][0]["message"]
        assert (await client.get(f"{CONNECTORS}/{slug}")).status_code == 404
        scopes["scopes"] = scopes["scopes"][:100]
        r = await client.post(CONNECTORS, json={"manifest": {**good, "auth": scopes},
                                                "endpoint_url": ENDPOINT})  # fmt: skip
        assert r.status_code == 201, r.text


async def test_display_names_are_visible_text(suite, dsn):
    publisher = await make_tenant(dsn, role=Role.publisher)
    slug = f"named-{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=suite.gateway, headers=publisher.headers) as client:
        for name in (
            "   ",
            "\t\n",
            f"Acme {slug}\u200b",
            f"\u202eAcme {slug}",
            f"Acme\x07{slug}",
            f"S\u0430lesforce {slug}",
            f"\u0391cme {slug}",
        ):  # Cyrillic a, Greek A
            body = {"manifest": {**manifest(slug, "1.0.0"), "display_name": name},
                    "endpoint_url": ENDPOINT}  # fmt: skip
            r = await client.post(CONNECTORS, json=body)
            assert r.status_code == 422 and r.json()["code"] == "invalid_manifest", (name, r.text)
            assert [e["path"] for e in r.json()["errors"]] == ["/manifest/display_name"]
        assert (await client.get(f"{CONNECTORS}/{slug}")).status_code == 404
        body = {"manifest": {**manifest(slug, "1.0.0"), "display_name": f"  Acme {slug} \n"},
                "endpoint_url": ENDPOINT}  # fmt: skip
        r = await client.post(CONNECTORS, json=body)
        assert r.status_code == 201 and r.json()["name"] == f"Acme {slug}", r.text
        assert r.json()["manifest"]["display_name"] == f"Acme {slug}"
        # one script, or scripts that do not look alike, are names like any other
        for name in (f"Сбербанк Business {slug}", f"Chatwork チャットワーク {slug}",
                     f"Zoë Café {slug}"):  # fmt: skip
            slug2 = f"named-{secrets.token_hex(3)}"
            body = {"manifest": {**manifest(slug2, "1.0.0"), "display_name": name},
                    "endpoint_url": ENDPOINT}  # fmt: skip
            r = await client.post(CONNECTORS, json=body)
            assert r.status_code == 201, (name, r.text)


async def test_schemas_that_would_break_installs_are_refused_and_patterns_bounded(suite, dsn):
    tenant = await make_tenant(dsn, role=Role.admin)
    publisher = await add_key(dsn, tenant, Role.publisher)
    slug = f"refs-{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=suite.gateway, headers=tenant.headers,
                                 timeout=30) as client:  # fmt: skip
        for ref, message in (("#/$defs/nope", "does not resolve"),
                             ("https://example.com/schema.json", "only references within")):  # fmt: skip
            bad = manifest(slug, "1.0.0", a={"$ref": ref})
            r = await client.post(CONNECTORS, json={"manifest": bad, "endpoint_url": ENDPOINT},
                                  headers=publisher.headers)  # fmt: skip
            assert r.status_code == 422 and r.json()["code"] == "invalid_manifest", r.text
            [error] = r.json()["errors"]
            assert error["path"] == "/manifest/config_schema/properties/a/$ref"
            assert message in error["message"]
        assert (await client.get(f"{CONNECTORS}/{slug}")).status_code == 404
        # stream schemas too: connector_service checks records written to a stream against them
        streams = [{"name": "contacts", "primary_key": "id", "schema": {
            "type": "object", "properties": {"owner": {"$ref": "#/$defs/user"}}}}]  # fmt: skip
        r = await client.post(CONNECTORS, headers=publisher.headers, json={
            "manifest": {**manifest(slug, "1.0.0"), "streams": streams},
            "endpoint_url": ENDPOINT})  # fmt: skip
        assert r.status_code == 422 and r.json()["code"] == "invalid_manifest", r.text
        assert [e["path"] for e in r.json()["errors"]] == [
            "/manifest/streams/0/schema/properties/owner/$ref"
        ]

        slow = {"type": "string", "pattern": r"^(a|aa)+$"}  # catastrophic for re's backtracking
        body = {"manifest": manifest(slug, "1.0.0", name=slow), "endpoint_url": ENDPOINT}
        r = await client.post(CONNECTORS, json=body, headers=publisher.headers)
        assert r.status_code == 201, r.text
        started = time.monotonic()
        r = await client.post("/api/v1/integrations",
                              json={"connector": slug, "config": {"name": "a" * 36 + "!"}})  # fmt: skip
        assert time.monotonic() - started < 2, "the pattern held connector_service's event loop"
        assert r.status_code == 422 and r.json()["code"] == "invalid_config", r.text
        assert r.json()["errors"] == [{"path": "/config/name",
            "message": "took too long to check against the pattern '^(a|aa)+$'"}]  # fmt: skip
