"""Installs are pinned to the version they installed: a publisher who ships a new version with
another endpoint and token URL gets nothing from existing installs until their tenant upgrades,
after a preview that names the new hosts and a confirmation of them. A withdrawn version is no
longer called, and nothing a publisher does moves an install.

Real processes: the suite, two copies of a connector (the version each serves is counted at
each), and two token endpoints recording what reaches them."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from common import db
from common.crypto import KeyRing
from common.roles import Role
from connector_service.oauth import tokens
from tests.conftest import TEST_KEY_RING, Suite, start_suite
from tests.connector_service.oauth_servers import recording_endpoint
from tests.connector_service.rig import get_url, start_flaky
from tests.support import TenantKey, make_tenant


@pytest.fixture(scope="module")
async def pinned_suite(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suite]:
    """The suite with loopback allowed for egress too: the token endpoints stand in for an OAuth
    provider on this machine, by explicit configuration."""
    logs = tmp_path_factory.mktemp("pinning") / "services.log"
    running = await asyncio.to_thread(
        start_suite, dsn, logs, SEEDOS_EGRESS_ALLOWED_NETWORKS="127.0.0.0/8"
    )
    try:
        yield running
    finally:
        running.supervisor.stop()


def _manifest(base: dict, *, version: str, token_url: str) -> dict:
    return {
        **base, "version": version,
        "auth": {"scheme": "oauth2", "authorize_url": "http://127.0.0.1:9/authorize",
                 "token_url": token_url, "scopes": ["read"]},
    }  # fmt: skip


async def _expire_tokens(dsn: str, tenant: TenantKey, iid: str) -> None:
    """Tokens as a connect leaves them, already expired: the next call refreshes first."""
    conn = await db.connect(dsn)
    try:
        await tokens.store_tokens(
            conn, KeyRing.from_json(TEST_KEY_RING), tenant_id=tenant.tenant_id,
            integration_id=uuid.UUID(iid), keep_refresh_token=False,
            token={"access_token": "old", "refresh_token": "r-" + secrets.token_hex(4),
                   "expires_in": 0},
        )  # fmt: skip
    finally:
        await conn.close()


async def _count(client: httpx.AsyncClient, iid: str) -> httpx.Response:
    return await client.post(
        f"/api/v1/integrations/{iid}/actions/count", json={"input": {"tag": "pinned"}},
        headers={"Idempotency-Key": secrets.token_hex(8)},
    )  # fmt: skip


async def _calls(url: str) -> int:
    return (await get_url(url + "/calls")).get("pinned", 0)


async def test_an_install_keeps_its_version_until_its_tenant_upgrades(pinned_suite, dsn, tmp_path):
    name = f"pinned-{secrets.token_hex(3)}"
    old, new = start_flaky(name, tmp_path), start_flaky(name + "-b", tmp_path)
    publisher = await make_tenant(dsn, role=Role.publisher)
    editor = await make_tenant(dsn, role=Role.editor)
    gateway = pinned_suite.gateway
    try:
        async with (
            recording_endpoint("127.0.0.1") as old_tokens,
            recording_endpoint("127.0.0.1") as new_tokens,
            httpx.AsyncClient(base_url=gateway, headers=publisher.headers, timeout=30) as pub,
            httpx.AsyncClient(base_url=gateway, headers=editor.headers, timeout=30) as client,
        ):
            base = {**await get_url(old.url + "/manifest"), "name": name, "display_name": name}
            r = await pub.post("/api/v1/marketplace/connectors", json={
                "manifest": _manifest(base, version="1.0.0", token_url=old_tokens.url),
                "endpoint_url": old.url, "category": "crm"})  # fmt: skip
            assert r.status_code == 201, r.text

            r = await client.post("/api/v1/integrations", json={"connector": name})
            assert r.status_code == 201, r.text
            iid = r.json()["id"]
            assert r.json()["version"] == "1.0.0"
            r = await client.put(f"/api/v1/integrations/{iid}/oauth/client",
                                 json={"client_id": "app", "client_secret": "app-secret"})  # fmt: skip
            assert r.status_code == 200, r.text
            await _expire_tokens(dsn, editor, iid)
            r = await _count(client, iid)
            assert r.status_code == 200, r.text
            assert await _calls(old.url) == 1 and len(old_tokens.requests) >= 1

            # the publisher moves the entry to another endpoint and token URL
            r = await pub.post("/api/v1/marketplace/connectors", json={
                "manifest": _manifest(base, version="1.0.1", token_url=new_tokens.url),
                "endpoint_url": new.url})  # fmt: skip
            assert r.status_code == 200, r.text
            entry = (await client.get(f"/api/v1/marketplace/connectors/{name}")).json()
            assert entry["version"] == "1.0.1" and entry["update_available"]
            assert entry["tenant_installs"][0]["version"] == "1.0.0"

            refreshes = len(old_tokens.requests)
            await _expire_tokens(dsn, editor, iid)
            assert (await _count(client, iid)).status_code == 200
            # still 1.0.0's endpoint and token URL: the new ones got nothing
            assert await _calls(old.url) == 2 and await _calls(new.url) == 0
            assert len(old_tokens.requests) > refreshes and new_tokens.requests == []

            # the preview names what changes, the new hosts first
            preview = (await client.get(f"/api/v1/integrations/{iid}/upgrade")).json()
            assert preview["from_version"] == "1.0.0" and preview["to_version"] == "1.0.1"
            new_hosts = {new.url, new_tokens.url.rsplit("/", 1)[0]}  # scheme://host:port
            changed = {c["use"]: c["to"] for c in preview["changes"]["hosts"]["changed"]}
            assert changed == {"endpoint": new.url, "token_url": new_tokens.url.rsplit("/", 1)[0]}
            assert set(preview["confirm_hosts"]) == new_hosts
            assert set(preview["changes"]["hosts"]["removed"]) >= {old.url}
            assert preview["config_problems"] == [] and preview["available"] == ["1.0.1"]
            r = await client.get(f"/api/v1/integrations/{iid}/upgrade",
                                 params={"to_version": "2.0.0"})  # fmt: skip
            assert r.status_code == 422 and r.json()["code"] == "unknown_version"
            assert r.json()["available"] == ["1.0.1"]

            # not confirmed: refused, nothing changed
            r = await client.post(f"/api/v1/integrations/{iid}/upgrade", json={})
            assert r.status_code == 409 and r.json()["code"] == "confirmation_required", r.text
            assert set(r.json()["hosts"]) == new_hosts
            for partial in (
                {"accept_hosts": sorted(new_hosts)[:1], "to_version": "1.0.1"},
                {"accept_hosts": sorted(new_hosts)},
            ):  # no version named
                r = await client.post(f"/api/v1/integrations/{iid}/upgrade", json=partial)
                assert r.status_code == 409 and r.json()["to_version"] == "1.0.1", r.text
            assert (await client.get(f"/api/v1/integrations/{iid}")).json()["version"] == "1.0.0"

            r = await client.post(f"/api/v1/integrations/{iid}/upgrade",
                                  json={"accept_hosts": sorted(new_hosts), "to_version": "1.0.1"})  # fmt: skip
            assert r.status_code == 200 and r.json()["version"] == "1.0.1", r.text
            before_old = len(old_tokens.requests)
            await _expire_tokens(dsn, editor, iid)
            assert (await _count(client, iid)).status_code == 200
            assert await _calls(new.url) == 1 and await _calls(old.url) == 2
            assert len(new_tokens.requests) >= 1 and len(old_tokens.requests) == before_old
            upgraded = await _audit(dsn, editor, "integration.upgraded")
            assert upgraded["from_version"] == "1.0.0" and upgraded["to_version"] == "1.0.1"
            assert set(upgraded["hosts_confirmed"]) == new_hosts

            # withdrawn: neither calls nor a new connect go to that version any more
            r = await pub.post(f"/api/v1/marketplace/connectors/{name}/versions/1.0.1/withdraw",
                               json={"reason": "token host compromised"})  # fmt: skip
            assert r.status_code == 200, r.text
            r = await client.post(f"/api/v1/integrations/{iid}/oauth/connect", json={})
            assert r.status_code == 409 and r.json()["code"] == "update_required", r.text
            assert r.json()["reason"] == "token host compromised"
            refreshes = len(new_tokens.requests)
            await _expire_tokens(dsn, editor, iid)
            assert (await _count(client, iid)).status_code == 409
            assert await _calls(new.url) == 1 and len(new_tokens.requests) == refreshes
    finally:
        old.stop()
        new.stop()


async def test_a_withdrawn_version_is_not_called_and_moves_no_install(pinned_suite, dsn, tmp_path):
    name = f"withdrawn-{secrets.token_hex(3)}"
    served = start_flaky(name, tmp_path)
    publisher = await make_tenant(dsn, role=Role.publisher)
    stranger = await make_tenant(dsn, role=Role.publisher)
    editor = await make_tenant(dsn, role=Role.editor)
    gateway = pinned_suite.gateway
    try:
        async with (
            httpx.AsyncClient(base_url=gateway, headers=publisher.headers, timeout=30) as pub,
            httpx.AsyncClient(base_url=gateway, headers=stranger.headers, timeout=30) as other,
            httpx.AsyncClient(base_url=gateway, headers=editor.headers, timeout=30) as client,
        ):
            base = {**await get_url(served.url + "/manifest"), "name": name, "display_name": name}
            for version in ("1.0.0", "1.1.0"):
                r = await pub.post("/api/v1/marketplace/connectors", json={
                    "manifest": {**base, "version": version}, "endpoint_url": served.url,
                    "category": "crm"})  # fmt: skip
                assert r.status_code in (200, 201), r.text
            iid = (await client.post("/api/v1/integrations", json={"connector": name})).json()["id"]
            assert (await client.get(f"/api/v1/integrations/{iid}")).json()["version"] == "1.1.0"
            assert (await _count(client, iid)).status_code == 200

            versions = f"/api/v1/marketplace/connectors/{name}/versions"
            listed = (await client.get(versions)).json()["items"]
            assert [v["version"] for v in listed] == ["1.1.0", "1.0.0"]
            assert listed[0]["withdrawn_at"] is None and listed[0]["endpoint_host"] == "127.0.0.1"
            r = await client.post(f"{versions}/1.1.0/withdraw", json={"reason": "x"})
            assert r.status_code == 403  # an editor is no publisher
            r = await other.post(f"{versions}/1.1.0/withdraw", json={"reason": "mine now"})
            assert r.status_code == 403 and r.json()["code"] == "not_entry_publisher"
            r = await pub.post(f"{versions}/9.9.9/withdraw", json={"reason": "x"})
            assert r.status_code == 404 and r.json()["code"] == "version_not_found"
            r = await pub.post(f"{versions}/1.1.0/withdraw", json={"reason": "leaks tokens"})
            assert r.status_code == 200 and r.json()["installs"] == 1, r.text
            r = await pub.post(f"{versions}/1.1.0/withdraw", json={"reason": "again"})
            assert r.status_code == 409 and r.json()["code"] == "already_withdrawn"

            item = (await client.get(f"/api/v1/integrations/{iid}")).json()
            assert item["version"] == "1.1.0"  # not moved anywhere
            assert item["status"] == "update_required" and "leaks tokens" in item["status_reason"]
            entry = (await client.get(f"/api/v1/marketplace/connectors/{name}")).json()
            assert entry["tenant_installs"][0]["status"] == "update_required"
            assert not entry["update_available"]  # 1.0.0, the newest not withdrawn, is older
            listed = (await client.get("/api/v1/integrations",
                                       params={"status": "update_required"})).json()  # fmt: skip
            assert [i["id"] for i in listed["items"]] == [iid]
            before = await _calls(served.url)
            r = await _count(client, iid)
            assert r.status_code == 409 and r.json()["code"] == "update_required", r.text
            assert await _calls(served.url) == before  # nothing was sent
            # nothing newer to move to: 1.0.0 is older; a new install gets 1.0.0
            preview = (await client.get(f"/api/v1/integrations/{iid}/upgrade")).json()
            assert preview["up_to_date"] and preview["withdrawn"] == "leaks tokens"
            r = await client.post("/api/v1/integrations", json={"connector": name})
            assert r.status_code == 201 and r.json()["version"] == "1.0.0", r.text
            detail = (await client.get(f"{versions}/1.1.0")).json()
            assert (
                detail["withdrawn_reason"] == "leaks tokens" and detail["manifest"]["name"] == name
            )
            audit = await _audit(dsn, publisher, "marketplace.version_withdrawn")
            assert audit["version"] == "1.1.0" and audit["installs"] == 1

            # a published version's content cannot change, whoever writes the database
            conn = await db.connect(dsn)
            try:
                with pytest.raises(asyncpg.CheckViolationError):
                    await conn.execute(
                        "UPDATE marketplace_connector_versions v SET endpoint_url = 'http://x'"
                        " FROM marketplace_connectors mc WHERE mc.id = v.connector_id"
                        " AND mc.slug = $1 AND v.version = '1.0.0'", name)  # fmt: skip
            finally:
                await conn.close()
    finally:
        served.stop()


async def _audit(dsn: str, tenant: TenantKey, action: str) -> dict:
    conn = await db.connect(dsn)
    try:
        return await conn.fetchval(
            "SELECT payload FROM audit_logs WHERE tenant_id = $1 AND action = $2"
            " ORDER BY seq DESC LIMIT 1", tenant.tenant_id, action)  # fmt: skip
    finally:
        await conn.close()
