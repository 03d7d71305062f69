"""Publishing through the gateway: who may, what is refused (and changes nothing), and installs
of an older version being offered and moved to the new one."""

from __future__ import annotations

import secrets

import httpx

from common import db
from common.roles import Role
from marketplace_service.catalog import repository as catalog_repository
from tests.support import add_key, make_tenant

CONNECTORS = "/api/v1/marketplace/connectors"
ENDPOINT = "http://127.0.0.1:9"  # allowed (loopback); nothing needs to listen for these tests


def manifest(slug: str, version: str, **schema_props: dict) -> dict:
    required = sorted(schema_props)
    return {
        "name": slug, "display_name": f"Acme {slug}", "version": version,
        "description": "Acme's invoices and customers", "auth": {"scheme": "api_key"},
        "config_schema": {"type": "object", "properties": schema_props, "required": required},
        "streams": [], "actions": [],
    }  # fmt: skip


async def test_only_publishers_publish_and_only_their_own_entries(suite, dsn):
    tenant = await make_tenant(dsn, role=Role.admin)
    publisher = await add_key(dsn, tenant, Role.publisher)
    rival = await make_tenant(dsn, role=Role.publisher)
    slug = f"acme-{secrets.token_hex(3)}"
    body = {"manifest": manifest(slug, "1.0.0"), "endpoint_url": ENDPOINT}
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        r = await client.post(CONNECTORS, json=body, headers=tenant.headers)  # admin: no
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
        assert (await client.get(f"{CONNECTORS}/{slug}", headers=tenant.headers)).status_code == 404
        r = await client.post(CONNECTORS, json=body, headers=publisher.headers)
        assert r.status_code == 201, r.text
        assert r.json()["published_by_you"] and r.json()["installs"] == 0
        newer = {**body, "manifest": manifest(slug, "1.0.1")}
        r = await client.post(CONNECTORS, json=newer, headers=rival.headers)
        assert r.status_code == 403 and r.json()["code"] == "not_entry_publisher"
        platform = {**body, "manifest": {**manifest("slack", "9.0.0"), "display_name": "Slack"}}
        r = await client.post(CONNECTORS, json=platform, headers=rival.headers)
        assert r.status_code == 403 and r.json()["code"] == "not_entry_publisher"
        same_name = {
            **body,
            "manifest": {**manifest(f"x-{slug}", "1.0.0"), "display_name": "Slack"},
        }
        r = await client.post(CONNECTORS, json=same_name, headers=rival.headers)
        assert r.status_code == 409 and r.json()["code"] == "connector_name_taken"
        for version in ("1.0.0", "0.9.9", "1.0.0-rc.1"):
            stale = {**body, "manifest": manifest(slug, version)}
            r = await client.post(CONNECTORS, json=stale, headers=publisher.headers)
            assert r.status_code == 409, (version, r.text)
            assert r.json()["code"] == "version_not_newer"
            assert r.json()["current_version"] == "1.0.0"
        r = await client.post(CONNECTORS, json=newer, headers=publisher.headers)
        assert r.status_code == 200 and r.json()["version"] == "1.0.1"
        slack = (await client.get(f"{CONNECTORS}/slack", headers=tenant.headers)).json()
        assert slack["version"] == "1.0.0" and slack["auth_scheme"] == "oauth2"


async def test_an_invalid_manifest_is_refused_with_every_reason(suite, dsn):
    publisher = await make_tenant(dsn, role=Role.publisher)
    bad = {
        "name": "Not A Slug", "version": "1.0", "auth": {"scheme": "oauth2"},
        "config_schema": {"type": "object", "properties": {"a": {"type": 5}}},
        "streams": [{"name": "x"}, {"name": "x"}], "actions": [{}],
    }  # fmt: skip
    async with httpx.AsyncClient(base_url=suite.gateway, headers=publisher.headers) as client:
        r = await client.post(CONNECTORS, json={"manifest": bad, "endpoint_url": ENDPOINT})
        assert r.status_code == 422 and r.json()["code"] == "invalid_manifest"
        reasons = {(e["path"], e["message"].split(" ")[0]) for e in r.json()["errors"]}
        paths = {path for path, _ in reasons}
        assert {"/manifest/name", "/manifest/version", "/manifest/auth",
                "/manifest/config_schema/properties/a/type", "/manifest/streams",
                "/manifest/actions/0"} <= paths, reasons  # fmt: skip
        assert len([e for e in r.json()["errors"] if e["path"] == "/manifest/auth"]) == 3
        r = await client.post(CONNECTORS, json={"manifest": [], "endpoint_url": ENDPOINT})
        assert r.status_code == 422 and r.json()["code"] == "validation_failed"
        r = await client.post(
            CONNECTORS, content=b"{", headers={"content-type": "application/json"}
        )
        assert r.status_code == 422 and r.json()["code"] == "invalid_json"
        for url in ("http://169.254.169.254/latest", "ftp://127.0.0.1/", "http://u:p@127.0.0.1/",
                    "http://8.8.8.8/", "http://0xa9fea9fe/", f"{ENDPOINT}/#", f"{ENDPOINT}/?",
                    f"{ENDPOINT}/base?x=1"):  # the last three would move the contract's paths  # fmt: skip
            good = manifest(f"ok-{secrets.token_hex(3)}", "1.0.0")
            r = await client.post(CONNECTORS, json={"manifest": good, "endpoint_url": url})
            assert r.status_code == 422 and r.json()["code"] == "endpoint_not_allowed", url
            assert (await client.get(f"{CONNECTORS}/{good['name']}")).status_code == 404


async def test_older_installs_are_offered_the_update_and_upgraded(suite, dsn):
    tenant = await make_tenant(dsn, role=Role.admin)
    publisher = await add_key(dsn, tenant, Role.publisher)
    bystander = await make_tenant(dsn, role=Role.viewer)
    slug = f"acme-{secrets.token_hex(3)}"
    region = {"type": "string", "enum": ["eu", "us"]}
    v1 = {"manifest": manifest(slug, "1.0.0", region=region), "endpoint_url": ENDPOINT}
    v2 = {"manifest": manifest(slug, "2.0.0", region=region, workspace={"type": "string"}),
          "endpoint_url": ENDPOINT}  # fmt: skip
    async with httpx.AsyncClient(base_url=suite.gateway, headers=tenant.headers) as client:
        assert (
            await client.post(CONNECTORS, json=v1, headers=publisher.headers)
        ).status_code == 201
        r = await client.post(
            "/api/v1/integrations", json={"connector": slug, "config": {"region": "eu"}}
        )
        assert r.status_code == 201, r.text
        iid = r.json()["id"]
        mine = (await client.get(CONNECTORS, params={"installed": "true", "limit": 200})).json()
        assert [e["slug"] for e in mine["items"]] == [slug]
        assert mine["items"][0]["installed"] and not mine["items"][0]["update_available"]
        assert mine["items"][0]["installs"] == 1
        others = (await client.get(CONNECTORS, params={"installed": "false", "limit": 200})).json()
        assert slug not in [e["slug"] for e in others["items"]]
        theirs = await client.get(
            CONNECTORS, params={"installed": "true"}, headers=bystander.headers
        )
        assert theirs.json()["items"] == []

        assert (
            await client.post(CONNECTORS, json=v2, headers=publisher.headers)
        ).status_code == 200
        detail = (await client.get(f"{CONNECTORS}/{slug}")).json()
        assert detail["version"] == "2.0.0" and detail["update_available"]
        assert [(i["id"], i["version"], i["update_available"]) for i in detail["tenant_installs"]] == [
            (iid, "1.0.0", True)]  # fmt: skip
        listed = (await client.get(CONNECTORS, params={"q": slug})).json()["items"][0]
        assert listed["update_available"]

        r = await client.post(f"/api/v1/integrations/{iid}/upgrade")
        assert r.status_code == 422 and r.json()["code"] == "invalid_config"
        assert r.json()["errors"] == [
            {"path": "/config", "message": "'workspace' is a required property"}]  # fmt: skip
        r = await client.post(
            f"/api/v1/integrations/{iid}/upgrade",
            json={"config": {"region": "mars", "workspace": "w"}},
        )
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/config/region"
        install = (await client.get(f"/api/v1/integrations/{iid}")).json()
        assert install["version"] == "1.0.0" and install["config"] == {"region": "eu"}  # unchanged

        viewer = await add_key(dsn, tenant, Role.viewer)
        r = await client.post(f"/api/v1/integrations/{iid}/upgrade", headers=viewer.headers)
        assert r.status_code == 403

        new_config = {"region": "eu", "workspace": "acme"}
        r = await client.post(f"/api/v1/integrations/{iid}/upgrade", json={"config": new_config})
        assert r.status_code == 200, r.text
        assert r.json()["version"] == "2.0.0" and r.json()["config"] == new_config
        r = await client.post(f"/api/v1/integrations/{iid}/upgrade")
        assert r.status_code == 409 and r.json()["code"] == "up_to_date"
        detail = (await client.get(f"{CONNECTORS}/{slug}")).json()
        assert not detail["update_available"] and detail["tenant_installs"][0]["version"] == "2.0.0"
        audit = (
            await client.get("/api/v1/audit-logs", params={"action": "integration.upgraded"})
        ).json()
        assert [(e["payload"]["from_version"], e["payload"]["to_version"]) for e in audit["items"]] == [
            ("1.0.0", "2.0.0")]  # fmt: skip
        published = (
            await client.get(
                "/api/v1/audit-logs", params={"action": "marketplace.connector_published"}
            )
        ).json()
        assert [e["payload"]["version"] for e in published["items"]] == ["2.0.0", "1.0.0"]


async def test_popularity_sorts_by_installs_as_last_counted(suite, dsn):
    category = f"cat-{secrets.token_hex(3)}"
    owner = await make_tenant(dsn, role=Role.admin)
    publisher = await add_key(dsn, owner, Role.publisher)
    slugs = [f"a-{category}", f"b-{category}"]  # a-... first by name
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        for slug in slugs:
            body = {"manifest": manifest(slug, "1.0.0"), "endpoint_url": ENDPOINT,
                    "category": category}  # fmt: skip
            r = await client.post(CONNECTORS, json=body, headers=publisher.headers)
            assert r.status_code == 201, r.text
        for _ in range(3):  # b is installed by three tenants, a by one
            t = await make_tenant(dsn, role=Role.editor)
            r = await client.post("/api/v1/integrations", json={"connector": slugs[1]},
                                  headers=t.headers)  # fmt: skip
            assert r.status_code == 201, r.text
        r = await client.post("/api/v1/integrations", json={"connector": slugs[0]},
                              headers=owner.headers)  # fmt: skip
        assert r.status_code == 201, r.text

        params = {"category": category, "sort": "popularity"}
        stale = (await client.get(CONNECTORS, params=params, headers=owner.headers)).json()
        # what items show is live (their order may or may not be recounted yet: the service
        # recounts in the background every 30 s)
        assert {e["slug"]: e["installs"] for e in stale["items"]} == dict(
            zip(slugs, [1, 3], strict=True)
        )
        conn = await db.connect(dsn)
        try:
            await catalog_repository.refresh_install_counts(conn)
        finally:
            await conn.close()
        first = (await client.get(CONNECTORS, params=params | {"limit": 1},
                                  headers=owner.headers)).json()  # fmt: skip
        second = (await client.get(CONNECTORS, headers=owner.headers,
                                   params=params | {"limit": 1, "cursor": first["next_cursor"]})).json()  # fmt: skip
        assert [e["slug"] for e in first["items"] + second["items"]] == slugs[::-1]
        assert second["next_cursor"] is None
        assert first["category_counts"][category] == 2  # counts ignore the category filter


async def test_oauth_token_and_revoke_urls_follow_the_egress_rule(suite, dsn):
    """OAuth providers are the outside world: public addresses only (the suite runs with the
    egress rule's default), so not loopback or private space, where connectors may be."""
    publisher = await make_tenant(dsn, role=Role.publisher)
    slug = f"oauth-{secrets.token_hex(3)}"
    public = "https://8.8.8.8"  # an address, so nothing is resolved (and nothing connects)
    auth = {"scheme": "oauth2", "scopes": ["read"], "token_url": f"{public}/token?realm=a",
            "revoke_url": f"{public}/revoke",
            "authorize_url": "http://127.0.0.1:9/authorize"}  # browsers only: not checked  # fmt: skip
    async with httpx.AsyncClient(base_url=suite.gateway, headers=publisher.headers) as client:
        for changed, path in (({"token_url": "http://169.254.169.254/token"}, "token_url"),
                              ({"token_url": "http://127.0.0.1:9/token"}, "token_url"),
                              ({"revoke_url": "http://10.0.0.1/revoke"}, "revoke_url"),
                              ({"revoke_url": "http://[::1]:9/revoke"}, "revoke_url"),
                              ({"token_url": f"{public}/token#"}, "token_url"),
                              ({"token_url": "http://u:p@8.8.8.8/token"}, "token_url")):  # fmt: skip
            body = {"manifest": {**manifest(slug, "1.0.0"), "auth": auth | changed},
                    "endpoint_url": ENDPOINT}  # fmt: skip
            r = await client.post(CONNECTORS, json=body)
            assert r.status_code == 422 and r.json()["code"] == "endpoint_not_allowed", r.text
            assert [e["path"] for e in r.json()["errors"]] == [f"/manifest/auth/{path}"]
            assert (await client.get(f"{CONNECTORS}/{slug}")).status_code == 404
        body = {"manifest": {**manifest(slug, "1.0.0"), "auth": auth}, "endpoint_url": ENDPOINT}
        r = await client.post(CONNECTORS, json=body)
        assert r.status_code == 201, r.text
