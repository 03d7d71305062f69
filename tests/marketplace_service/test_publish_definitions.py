"""Publishing connector definitions (issue 17): the catalog keeps the text by its digest, the
entry points at the generic connector, which fetches the text from the catalog and runs it. An
install keeps calling its pinned definition after a newer version is published; a definition
with problems, or whose fixed URLs break the egress rule, is refused with every problem and
nothing is stored.

Real processes: a suite of its own (its marketplace told where the generic connector listens),
the demo CRM, and the generic connector fetching from that marketplace."""

from __future__ import annotations

import asyncio
import http.client
import secrets
import time

import httpx
import pytest
import yaml

from common.roles import Role
from seedos_sdk.declarative.definition import digest_of
from seedos_sdk.testing.process import start
from tests.connector_service.rig import SDK_DIR, fetch, start_rig, stop_rig, wait_status
from tests.support import free_port, make_tenant

DEMO = (SDK_DIR / "examples" / "definitions" / "demo-crm.yaml").read_text()
URL = "/api/v1/marketplace/definitions"
# the demo CRM runs on this machine: loopback listed beside the public default
EGRESS = "127.0.0.0/8,0.0.0.0/0,::/0"


@pytest.fixture(scope="module")
def world(dsn, tmp_path_factory):
    logs = tmp_path_factory.mktemp("definitions")
    generic_url = f"http://127.0.0.1:{free_port()}"
    rig = start_rig(dsn, logs, SEEDOS_MARKETPLACE_GENERIC_CONNECTOR_URL=generic_url)
    generic = None
    try:
        generic = start(
            "seedos_sdk.declarative.server:app_factory", factory=True, cwd=SDK_DIR,
            port=int(generic_url.rsplit(":", 1)[1]), log_path=logs / "generic.log",
            env={"SEEDOS_DEFINITIONS_SOURCE": rig.suite.marketplace_service,
                 "SEEDOS_EGRESS_ALLOWED_NETWORKS": EGRESS},
        )  # fmt: skip
        seeded = httpx.post(f"{rig.crm.url}/admin/seed", json={"contacts": 20},
                            headers={"X-API-Key": rig.crm_key}, timeout=30)  # fmt: skip
        assert seeded.status_code < 300, seeded.text
        yield rig, generic_url
    finally:
        if generic is not None:
            generic.stop()
        stop_rig(rig)


def definition(name: str, version: str, **changes) -> str:
    raw = yaml.safe_load(DEMO)
    raw.update(name=name, version=version, display_name=name, **changes)
    return yaml.safe_dump(raw, sort_keys=False)


async def endpoint(dsn: str, slug: str) -> str:
    rows = await fetch(dsn, "SELECT endpoint_url FROM marketplace_connectors WHERE slug = $1", slug)
    return rows[0]["endpoint_url"]


async def synced(client: httpx.AsyncClient, iid: str) -> dict:
    r = await client.post(f"/api/v1/integrations/{iid}/sync/run")
    assert r.status_code in (202, 409), r.text
    deadline = time.monotonic() + 60
    while True:
        last = (await client.get(f"/api/v1/integrations/{iid}/sync/status")).json()["last_run"]
        if last and last["finished_at"]:
            return last
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)


async def test_published_definitions_run_and_installs_stay_pinned(world, dsn) -> None:
    rig, generic_url = world
    publisher = await make_tenant(dsn, role=Role.publisher)
    name = f"def-crm-{secrets.token_hex(3)}"
    first = definition(name, "1.0.0")
    async with (
        httpx.AsyncClient(base_url=rig.suite.gateway, timeout=30) as gw,
        httpx.AsyncClient(timeout=30) as plain,
    ):
        r = await gw.post(URL, headers=publisher.headers, json={
            "definition": first, "category": "crm", "vendor": "tests"})  # fmt: skip
        assert r.status_code == 201, r.text
        entry = r.json()
        digest = digest_of(first)
        assert await endpoint(dsn, name) == f"{generic_url}/definitions/{name}/1.0.0/{digest}"
        assert entry["manifest"]["name"] == name and entry["version"] == "1.0.0"
        assert entry["deployed"] is True
        # the catalog answers the text by its digest, with no token (content-addressed)
        text = await plain.get(f"{rig.suite.marketplace_service}/definitions/{digest}")
        assert text.status_code == 200 and text.text == first
        assert digest_of(text.content) == digest

        # a tenant installs it: the generic connector fetches the definition and runs it
        tenant = await make_tenant(dsn, role=Role.admin)
        r = await gw.post("/api/v1/integrations", headers=tenant.headers, json={
            "connector": name, "config": {"base_url": rig.crm.url},
            "credentials": {"api_key": rig.crm_key}})  # fmt: skip
        assert r.status_code == 201, r.text
        iid = r.json()["id"]
        gw.headers.update(tenant.headers)
        assert (await wait_status(gw, iid, "active"))["status"] == "active"
        run = await synced(gw, iid)
        assert run["outcome"] == "succeeded" and run["records_pulled"] >= 20, run

        # a newer version: the entry moves on, the install stays on the text it was made with
        second = definition(name, "1.1.0", description="The second version.")
        r = await gw.post(URL, headers=publisher.headers, json={"definition": second})
        assert r.status_code == 200, r.text
        assert (await endpoint(dsn, name)).endswith(f"/{name}/1.1.0/{digest_of(second)}")
        installed = (await gw.get(f"/api/v1/integrations/{iid}")).json()
        assert installed["version"] == "1.0.0"
        run = await synced(gw, iid)
        assert run["outcome"] == "succeeded", run
        # both texts are served, each at its own digest's URL, as published
        for version, text in (("1.0.0", first), ("1.1.0", second)):
            manifest = (
                await plain.get(
                    f"{generic_url}/definitions/{name}/{version}/{digest_of(text)}/manifest"
                )
            ).json()
            assert manifest["version"] == version
        # a digest nobody published, or another name with a real digest: nothing is served
        for path in (f"{name}/1.0.0/{'0' * 64}", f"other/1.0.0/{digest}"):
            assert (
                await plain.get(f"{generic_url}/definitions/{path}/manifest")
            ).status_code == 404


async def test_a_definition_with_problems_is_refused_with_every_one(world, dsn) -> None:
    rig, _ = world
    publisher = await make_tenant(dsn, role=Role.publisher)
    name = f"def-bad-{secrets.token_hex(3)}"
    raw = yaml.safe_load(definition(name, "1.0.0"))
    raw["streams"][0]["request"]["path"] = "/v1/{{ config.__class__ }}"
    raw["streams"][1]["records"] = "results[?"
    del raw["auth"]["name"]
    async with httpx.AsyncClient(base_url=rig.suite.gateway, timeout=30) as gw:
        r = await gw.post(URL, headers=publisher.headers,
                          json={"definition": yaml.safe_dump(raw)})  # fmt: skip
        assert r.status_code == 422 and r.json()["code"] == "invalid_definition", r.text
        errors = {e["path"]: e["message"] for e in r.json()["errors"]}
        # every problem at once: the schema's, the template's and the selector's
        assert set(errors) == {"auth", "streams[0].request.path", "streams[1].records"}, errors
        assert "'_'" in errors["streams[0].request.path"]
        assert "JMESPath" in errors["streams[1].records"]
        # a fixed URL outside the egress rule (the cloud metadata address)
        bad = definition(name, "1.0.0", base_url="http://169.254.169.254/latest")
        r = await gw.post(URL, headers=publisher.headers, json={"definition": bad})
        assert r.status_code == 422 and r.json()["code"] == "endpoint_not_allowed", r.text
        assert r.json()["errors"][0]["path"] == "base_url"
        # and a viewer may not publish at all
        viewer = await make_tenant(dsn, role=Role.viewer)
        r = await gw.post(
            URL, headers=viewer.headers, json={"definition": definition(name, "1.0.0")}
        )
        assert r.status_code == 403, r.text
    assert await fetch(dsn, "SELECT 1 FROM marketplace_definitions WHERE name = $1", name) == []
    assert await fetch(dsn, "SELECT 1 FROM marketplace_connectors WHERE slug = $1", name) == []


def test_the_text_endpoint_takes_reads_of_digests_only(world) -> None:
    rig, _ = world
    base = rig.suite.marketplace_service
    assert httpx.get(f"{base}/definitions/{'a' * 64}").status_code == 404
    assert httpx.get(f"{base}/definitions/not-a-digest").status_code == 422
    assert httpx.post(f"{base}/definitions/{'a' * 64}").status_code == 401  # reads only
    assert httpx.get(f"{base}/api/v1/marketplace/connectors").status_code == 401
    # only one plain segment after the public prefix goes without a token; the paths are sent
    # as written (http.client: httpx would resolve the dot segments before sending)
    host, port = base.removeprefix("http://").split(":")
    for path in ("/definitions/%2e%2e/api/v1/marketplace/connectors",
                 "/definitions/../api/v1/marketplace/connectors",
                 f"/definitions/{'a' * 64}/x", "/definitions/"):  # fmt: skip
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request("GET", path)
            status = conn.getresponse().status
        finally:
            conn.close()
        assert status == 401, (path, status)
