"""The platform's own catalog loads (demo data, deployed examples) next to tenants' entries: an
entry a tenant published is never overwritten nor adopted, and a clash does not stop the seed."""

from __future__ import annotations

import json
import secrets

import httpx

from common import db
from common.roles import Role
from marketplace_service.catalog.service import load_demo_catalog, register_deployed
from tests.marketplace_service.test_publish_api import CONNECTORS, ENDPOINT, manifest
from tests.support import make_tenant


def _demo_item(slug: str, name: str, description: str = "The platform's entry") -> dict:
    return {
        "slug": slug, "name": name, "description": description, "logo_url": None,
        "category": "crm", "vendor": "Platform", "auth_scheme": "api_key", "scopes": [],
        "setup_guide_url": None, "is_featured": False, "allow_multiple": True,
        "config_schema": {"type": "object", "properties": {}},
    }  # fmt: skip


async def test_the_platform_never_takes_over_a_tenants_entry(suite, dsn, tmp_path):
    publisher = await make_tenant(dsn, role=Role.publisher)
    taken, named = f"held-{secrets.token_hex(3)}", f"named-{secrets.token_hex(3)}"
    fresh = f"platform-{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=suite.gateway, headers=publisher.headers) as client:
        for slug in (taken, named):
            r = await client.post(CONNECTORS, json={"manifest": manifest(slug, "0.0.1"),
                                                    "endpoint_url": ENDPOINT})  # fmt: skip
            assert r.status_code == 201, r.text
        before = (await client.get(f"{CONNECTORS}/{taken}")).json()

        conn = await db.connect(dsn)
        try:
            platform = {**manifest(taken, "1.0.0"), "display_name": f"Platform {taken}"}
            reason = await register_deployed(
                conn, manifest=platform, endpoint_url="http://127.0.0.1:8", category="crm",
                vendor="SEED-OS",
            )  # fmt: skip
            assert reason and taken in reason
            catalog = tmp_path / "catalog.json"
            items = [_demo_item(taken, f"Platform {taken}"), _demo_item(fresh, f"Platform {fresh}"),
                     _demo_item(f"x-{named}", f"Acme {named}")]  # fmt: skip
            catalog.write_text(json.dumps(items))
            loaded = await load_demo_catalog(conn, catalog)
            assert loaded.loaded == 1 and set(loaded.skipped) == {taken, f"x-{named}"}
            assert named in loaded.skipped[f"x-{named}"]
            catalog.write_text(json.dumps([_demo_item(fresh, f"Platform {fresh}", "Refreshed")]))
            assert (await load_demo_catalog(conn, catalog)).skipped == {}
        finally:
            await conn.close()

        after = (await client.get(f"{CONNECTORS}/{taken}")).json()
        assert after == before and after["published_by_you"] and after["version"] == "0.0.1"
        assert (await client.get(f"{CONNECTORS}/x-{named}")).status_code == 404
        platform_entry = (await client.get(f"{CONNECTORS}/{fresh}")).json()
        assert platform_entry["description"] == "Refreshed"
        assert not platform_entry["published_by_you"]
        r = await client.post(CONNECTORS, json={"manifest": manifest(fresh, "9.0.0"),
                                                "endpoint_url": ENDPOINT})  # fmt: skip
        assert r.status_code == 403 and r.json()["code"] == "not_entry_publisher"
