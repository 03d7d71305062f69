"""Connecting accounts with OAuth 2.0 (authorization code + PKCE), refreshing and revoking their
tokens, end to end: the three services, the npm oidc-provider authorization server, the demo
CRM introspecting the tokens it is given and the example connector in oauth2 mode, all real
processes on loopback."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from common import db
from common.crypto import KeyRing
from common.roles import Role
from connector_service.credentials import service as credentials
from connector_service.integrations.service import NOT_CONNECTED
from connector_service.oauth import tokens
from connector_service.oauth.config import BINDING_COOKIE, OAuthConfig
from connector_service.oauth.errors import (
    NotConnected,
    ProviderNotAllowed,
    ProviderTimeout,
    ProviderUnavailable,
    ReconnectRequired,
)
from connector_service.settings import ConnectorServiceSettings
from marketplace_service.catalog.service import register_deployed
from tests.connector_service import oauth_servers
from tests.connector_service.oauth_servers import World
from tests.connector_service.rig import fetch
from tests.support import TenantKey, add_key, free_port, make_tenant

pytestmark = pytest.mark.skipif(
    not oauth_servers.available(), reason="needs node and `npm ci --prefix sdk/tests/oidc`"
)

PROBLEM = "application/problem+json"
CALLBACK, START = oauth_servers.CALLBACK, oauth_servers.START
PLATFORM, OWN_APP, TOKEN_TTL = oauth_servers.PLATFORM, oauth_servers.OWN_APP, oauth_servers.TTL


@pytest.fixture(scope="module")
async def world(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with oauth_servers.running_world(dsn, tmp_path_factory.mktemp("oauth")) as running:
        yield running


@dataclass
class ServiceSide:
    """What the ConnectorManager has in connector_service: the database, the key ring and the
    OAuth configuration (the same as the running suite's)."""

    db: db.Database
    ring: KeyRing
    oauth: OAuthConfig


@pytest.fixture(scope="module")
async def side(world: World, dsn: str) -> AsyncIterator[ServiceSide]:
    settings = ConnectorServiceSettings(
        database_url=dsn, env="production", internal_public_keys=world.suite.keys.public.to_json(),
        idempotency_key=world.suite.keys.idempotency_key,
        credential_keys=world.ring.to_json(), public_url=world.suite.gateway,
        oauth_clients={world.slug: {"client_id": PLATFORM[0], "client_secret": PLATFORM[1]}},
        endpoint_allowed_networks=oauth_servers.ALLOWED_NETWORKS,
        egress_allowed_networks=oauth_servers.ALLOWED_NETWORKS,
    )  # fmt: skip
    pool = await db.open_pool(settings, application_name="tests")
    try:
        yield ServiceSide(db.Database(pool, acquire_timeout=5), world.ring,
                          OAuthConfig.from_settings(settings))  # fmt: skip
    finally:
        await pool.close()


async def _install(world: World, client: httpx.AsyncClient) -> str:
    r = await client.post("/api/v1/integrations",
                          json={"connector": world.slug, "config": {"base_url": world.crm}})  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _connect(
    world: World, client: httpx.AsyncClient, iid: str, **body
) -> oauth_servers.Approved:
    """Start a connect, open its start URL and go through the provider's pages in one browser;
    the callback URL the provider redirects it to, with the browser's binding cookie."""
    r = await client.post(f"/api/v1/integrations/{iid}/oauth/connect", json=body)
    assert r.status_code == 200, r.text
    return await oauth_servers.consent(
        r.json()["authorization_url"], stop_at=world.suite.gateway + CALLBACK
    )


async def _connected(world: World, t: TenantKey, dsn: str) -> str:
    """A new install of the module's connector with an account connected."""
    async with httpx.AsyncClient(base_url=world.suite.gateway, headers=t.headers) as client:
        iid = await _install(world, client)
        callback = await _connect(world, client, iid)
    assert (await callback.open()).status_code == 200
    assert (await _settled(dsn, iid))["status"] == "active"
    return iid


async def _integration(dsn: str, iid: str) -> dict:
    rows = await fetch(dsn, "SELECT * FROM integration_connectors WHERE id = $1", uuid.UUID(iid))
    return dict(rows[0])


async def _settled(dsn: str, iid: str) -> dict:
    """The install once the check that follows a connect has run (it leaves ``pending``)."""
    deadline = time.monotonic() + 15
    while True:
        row = await _integration(dsn, iid)
        if row["status"] != "pending" or time.monotonic() > deadline:
            return row
        await asyncio.sleep(0.1)


async def _stored(side: ServiceSide, integration: dict) -> dict[str, str]:
    async with side.db.connection() as conn:
        return await credentials.load(
            conn, side.ring, tenant_id=integration["tenant_id"], integration_id=integration["id"]
        )


async def test_connect_through_the_gateway_with_pkce(world, side, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    async with httpx.AsyncClient(base_url=world.suite.gateway, headers=t.headers) as client:
        iid = await _install(world, client)
        r = await client.post(f"/api/v1/integrations/{iid}/oauth/connect",
                              json={"return_to": "/dashboard/integrations"})  # fmt: skip
        assert r.status_code == 200, r.text
        # a start URL on the gateway, to open in the browser that will approve
        start = urlsplit(r.json()["authorization_url"])
        assert f"{start.scheme}://{start.netloc}{start.path}" == world.suite.gateway + START
        start_token = parse_qs(start.query)["token"][0]
        assert world.auth.issuer not in r.text and "state" not in start.query
    # opened by a browser (no API key): bound to it, and redirected to the provider
    authorization_url, binding = await oauth_servers.open_start(r.json()["authorization_url"])
    url = urlsplit(authorization_url)
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}{url.path}" == world.auth.issuer + "/auth"
    assert query["client_id"] == PLATFORM[0] and query["code_challenge_method"] == "S256"
    assert query["redirect_uri"] == world.suite.gateway + CALLBACK
    assert query["scope"].split() == ["crm.read", "crm.write", "offline_access"]
    state, challenge = query["state"], query["code_challenge"]
    # the state, start token and binding are stored as hashes only, the PKCE verifier and the
    # provider's URL encrypted
    rows = await fetch(dsn, "SELECT * FROM oauth_states WHERE integration_id = $1",
                       uuid.UUID(iid))  # fmt: skip
    assert len(rows) == 1
    dump = repr(dict(rows[0])).encode()
    for secret in (state, challenge, start_token, binding, world.auth.issuer):
        assert secret.encode() not in dump, secret
    assert rows[0]["user_id"] == f"apikey:{t.key_id}"
    assert rows[0]["start_hash"] is None and rows[0]["started_at"] is not None  # used up

    callback = await oauth_servers.approve(
        authorization_url, binding=binding, stop_at=world.suite.gateway + CALLBACK
    )
    # the provider's redirect, followed by the same browser (its cookie, no API key)
    async with httpx.AsyncClient() as browser:
        done = await browser.get(callback.url, headers=callback.cookie)
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/dashboard/integrations"
        assert done.headers["cache-control"] == "no-store"
        cleared = done.headers["set-cookie"]  # the binding is of no further use
        assert cleared.startswith(f"{BINDING_COOKIE}=") and "Max-Age=0" in cleared
        replay = await browser.get(callback.url, headers=callback.cookie)
        assert replay.status_code == 400 and replay.headers["content-type"] == PROBLEM
        assert replay.json()["code"] == "oauth_state_invalid"

    # the connect is followed by a check through the connector with the new token
    row = await _settled(dsn, iid)
    assert row["status"] == "active" and row["status_reason"] == "check passed", row
    async with httpx.AsyncClient(base_url=world.suite.gateway, headers=t.headers) as client:
        fields = (await client.get(f"/api/v1/integrations/{iid}/credentials")).json()
        assert {"oauth.access_token", "oauth.refresh_token", "oauth.expires_at"} <= set(
            fields["fields_set"]
        )
    stored = await _stored(side, row)
    access, refresh = stored["oauth.access_token"], stored["oauth.refresh_token"]
    assert abs(int(stored["oauth.expires_at"]) - (time.time() + TOKEN_TTL)) < 15
    raw = await fetch(dsn, "SELECT * FROM credentials WHERE integration_id = $1", row["id"])
    dump = repr([dict(r) for r in raw]).encode()
    assert access.encode() not in dump and refresh.encode() not in dump
    code = parse_qs(urlsplit(callback.url).query)["code"][0]
    for secret in (access, refresh, code, PLATFORM[1], start_token, binding, state):
        assert secret not in world.suite.logs()
    # a token for this user and client, with PKCE: the provider required it (server.mjs)
    answer = world.auth.introspect(access)
    assert answer["active"] and answer["client_id"] == PLATFORM[0] and answer["sub"] == "alice"
    # the token works with the demo CRM through the connector, and nothing else does
    assert (await world.check(access)).status_code == 200
    assert (await world.check("not-a-token")).status_code == 401
    audit = await fetch(dsn, "SELECT user_id, payload FROM audit_logs WHERE tenant_id = $1"
                        " AND action = 'integration.connected'", t.tenant_id)  # fmt: skip
    assert len(audit) == 1 and audit[0]["payload"]["integration_id"] == iid
    assert audit[0]["user_id"] == f"apikey:{t.key_id}"  # who started the connect
    assert access not in json.dumps(audit[0]["payload"])
    # what the connector receives: the access token, never the refresh token
    given = await tokens.call_credentials(
        side.db, side.ring, integration=row, manifest=world.manifest,
        oauth=replace(side.oauth, refresh_margin=10),
    )  # fmt: skip
    assert given == {"access_token": access}


async def test_refresh_before_expiry_rotates_and_force_refresh(world, side, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    iid = await _connected(world, t, dsn)
    row = await _integration(dsn, iid)
    first = await _stored(side, row)

    # the token expires within 60 s (TOKEN_TTL): refreshed before use, the new refresh token
    # written back, the old one now refused by the provider
    given = await tokens.call_credentials(
        side.db, side.ring, integration=row, manifest=world.manifest, oauth=side.oauth
    )
    second = await _stored(side, row)
    assert given == {"access_token": second["oauth.access_token"]}
    assert second["oauth.access_token"] != first["oauth.access_token"]
    assert second["oauth.refresh_token"] != first["oauth.refresh_token"]
    assert (await world.check(given["access_token"])).status_code == 200

    # a fresh token is used as it is, unless the caller forces a refresh (after a 401)
    fresh = replace(side.oauth, refresh_margin=10)
    same = await tokens.call_credentials(
        side.db, side.ring, integration=row, manifest=world.manifest, oauth=fresh
    )
    assert same == given
    forced = await tokens.call_credentials(
        side.db, side.ring, integration=row, manifest=world.manifest, oauth=fresh,
        force_refresh=True,
    )  # fmt: skip
    assert forced["access_token"] != given["access_token"]
    assert (await world.check(forced["access_token"])).status_code == 200
    assert (await _integration(dsn, iid))["status"] == "active"

    old = world.auth.refresh(first["oauth.refresh_token"], client=PLATFORM)
    assert old.status_code == 400 and old.json()["error"] == "invalid_grant"


async def test_a_401_from_the_connector_is_answered_by_one_refresh(world, side, dsn):
    """The provider stops accepting an access token before it expires (here: the stored token
    is one it never issued): the demo CRM refuses it (introspection: inactive), the connector
    answers 401, connector_service refreshes once and the call goes through. When the grant is
    revoked at the provider, that one refresh is refused and the install needs a reconnect."""
    t = await make_tenant(dsn, role=Role.editor)
    iid = await _connected(world, t, dsn)
    row = await _integration(dsn, iid)
    before = await _stored(side, row)
    async with side.db.connection() as conn:
        await credentials.store(conn, side.ring, tenant_id=row["tenant_id"], integration_id=row["id"],
                                secrets={tokens.ACCESS_TOKEN: "a-token-the-provider-refuses"})  # fmt: skip
    async with httpx.AsyncClient(base_url=world.suite.gateway, headers=t.headers) as client:
        r = await client.post(f"/api/v1/integrations/{iid}/check")
        assert r.status_code == 200 and r.json()["status"] == "active", r.text
        after = await _stored(side, row)
        assert after[tokens.ACCESS_TOKEN] not in (before[tokens.ACCESS_TOKEN],
                                                  "a-token-the-provider-refuses")  # fmt: skip
        assert after["oauth.refresh_token"] != before["oauth.refresh_token"]  # rotated, kept
        assert (await world.check(after[tokens.ACCESS_TOKEN])).status_code == 200
        refreshes = [line for line in world.suite.logs().splitlines()
                     if "oauth_refreshed" in line and iid in line]  # fmt: skip
        assert len(refreshes) == 1  # the 401 cost exactly one refresh

        # revoking the token at the provider revokes its grant: the one refresh is refused
        world.auth.revoke(after[tokens.ACCESS_TOKEN], client=PLATFORM, hint="access_token")
        r = await client.post(f"/api/v1/integrations/{iid}/check")
        shown = (await client.get(f"/api/v1/integrations/{iid}")).json()
    assert shown["status"] == "error" and shown["status_reason"].startswith("reconnect"), shown


async def test_concurrent_refreshes_spend_the_refresh_token_once(world, side, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    iid = await _connected(world, t, dsn)
    row = await _integration(dsn, iid)
    before = await _stored(side, row)
    results = await asyncio.gather(*(
        tokens.call_credentials(side.db, side.ring, integration=row, manifest=world.manifest,
                                oauth=side.oauth, rejected=before["oauth.access_token"])
        for _ in range(4)
    ))  # fmt: skip
    # four calls answered 401 with the same token: one refresh, the others waited for it and
    # took its token (with rotation, a second refresh with the same refresh token would have
    # been invalid_grant), however late each read the tokens
    assert len({r["access_token"] for r in results}) == 1
    late = await tokens.call_credentials(side.db, side.ring, integration=row,
                                         manifest=world.manifest, oauth=side.oauth,
                                         rejected=before["oauth.access_token"])  # fmt: skip
    assert late["access_token"] == results[0]["access_token"]  # read after it: no refresh
    assert results[0]["access_token"] != before["oauth.access_token"]
    after = await _integration(dsn, iid)
    assert after["status"] == "active", after["status_reason"]
    assert (await world.check(results[0]["access_token"])).status_code == 200


async def test_invalid_grant_means_reconnect(world, side, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    iid = await _connected(world, t, dsn)
    row = await _integration(dsn, iid)
    stored = await _stored(side, row)
    world.auth.revoke(stored["oauth.refresh_token"], client=PLATFORM, hint="refresh_token")
    with pytest.raises(ReconnectRequired) as caught:
        await tokens.call_credentials(
            side.db, side.ring, integration=row, manifest=world.manifest, oauth=side.oauth,
            force_refresh=True,
        )  # fmt: skip
    assert caught.value.status == 409 and caught.value.code == "reconnect_required"
    async with httpx.AsyncClient(base_url=world.suite.gateway, headers=t.headers) as client:
        shown = (await client.get(f"/api/v1/integrations/{iid}")).json()
    assert shown["status"] == "error" and shown["status_reason"].startswith("reconnect")
    audit = await fetch(dsn, "SELECT payload FROM audit_logs WHERE tenant_id = $1"
                        " AND action = 'integration.reconnect_required'", t.tenant_id)  # fmt: skip
    assert [a["payload"]["integration_id"] for a in audit] == [iid]

    # connecting again makes it usable: checked with the new tokens, active
    async with httpx.AsyncClient(base_url=world.suite.gateway, headers=t.headers) as client:
        callback = await _connect(world, client, iid)
    assert (await callback.open()).status_code == 200
    assert (await _settled(dsn, iid))["status"] == "active"
    given = await tokens.call_credentials(
        side.db, side.ring, integration=row, manifest=world.manifest, oauth=side.oauth
    )
    assert (await world.check(given["access_token"])).status_code == 200


async def test_a_refused_refresh_token_is_spent_once_by_concurrent_callers(world, side, dsn):
    """Calls that queued on the refresh lock behind the refused refresh get the same 409 and do
    not spend the dead refresh token again: one audit, and later calls too are answered from
    the install's status."""
    t = await make_tenant(dsn, role=Role.editor)
    iid = await _connected(world, t, dsn)
    row = await _integration(dsn, iid)
    stored = await _stored(side, row)
    world.auth.revoke(stored["oauth.refresh_token"], client=PLATFORM, hint="refresh_token")

    async def refresh() -> BaseException | dict:
        try:
            return await tokens.call_credentials(
                side.db, side.ring, integration=row, manifest=world.manifest, oauth=side.oauth,
                force_refresh=True,
            )  # fmt: skip
        except ReconnectRequired as exc:
            return exc

    results = await asyncio.gather(*(refresh() for _ in range(4)))
    results.append(await refresh())
    assert all(isinstance(r, ReconnectRequired) for r in results), results
    assert {r.detail for r in results} == {(await _integration(dsn, iid))["status_reason"]}
    audit = await fetch(dsn, "SELECT payload FROM audit_logs WHERE tenant_id = $1"
                        " AND action = 'integration.reconnect_required'", t.tenant_id)  # fmt: skip
    assert [a["payload"]["integration_id"] for a in audit] == [iid]


async def test_provider_down_is_a_fast_503_and_changes_nothing(world, side, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    iid = await _connected(world, t, dsn)
    row = await _integration(dsn, iid)
    before = await _stored(side, row)
    closed = f"http://127.0.0.1:{free_port()}"
    unreachable = {**world.manifest, "auth": {**world.manifest["auth"], "token_url": closed}}
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable) as caught:
        await tokens.call_credentials(
            side.db, side.ring, integration=row, manifest=unreachable, oauth=side.oauth,
            force_refresh=True,
        )  # fmt: skip
    assert caught.value.status == 503 and time.monotonic() - started < 5
    # a provider that accepts the connection and never answers: 504 at the configured timeout
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hanging = f"http://127.0.0.1:{silent.getsockname()[1]}/token"
        slow = {**world.manifest, "auth": {**world.manifest["auth"], "token_url": hanging,
                                           "revoke_url": hanging}}  # fmt: skip
        started = time.monotonic()
        with pytest.raises(ProviderTimeout) as caught:
            await tokens.call_credentials(
                side.db, side.ring, integration=row, manifest=slow,
                oauth=replace(side.oauth, timeout=1), force_refresh=True,
            )  # fmt: skip
        assert caught.value.status == 504 and time.monotonic() - started < 5
        # revoking on uninstall is best effort: it gives up quickly and says why
        async with side.db.connection() as conn:
            for manifest, outcome in ((unreachable, "failed: unreachable"),
                                      (slow, "failed: timeout")):  # fmt: skip
                manifest = {**manifest, "auth": {**manifest["auth"],
                                                 "revoke_url": manifest["auth"]["token_url"]}}  # fmt: skip
                started = time.monotonic()
                assert await tokens.revoke_tokens(
                    conn, side.ring, integration=row, manifest=manifest,
                    oauth=replace(side.oauth, revoke_timeout=1),
                ) == outcome  # fmt: skip
                assert time.monotonic() - started < 5
    assert await _stored(side, row) == before
    assert (await _integration(dsn, iid))["status"] == "active"
    assert world.auth.introspect(before["oauth.access_token"])["active"] is True


async def _own_entry(world: World, dsn: str, client: httpx.AsyncClient) -> tuple[str, str]:
    """A catalog entry of the example connector of its own (its manifest can change without
    touching the module's), installed with the tenant's own app: (its slug, the install)."""
    slug = f"{world.slug}-{secrets.token_hex(3)}"
    conn = await db.connect(dsn)
    try:
        manifest = {**world.manifest, "name": slug, "display_name": f"Demo CRM {slug}"}
        await register_deployed(
            conn, manifest=manifest, endpoint_url=world.connector, category="crm", vendor="tests"
        )
    finally:
        await conn.close()
    iid = (await client.post("/api/v1/integrations", json={
        "connector": slug, "config": {"base_url": world.crm}})).json()["id"]  # fmt: skip
    r = await client.put(f"/api/v1/integrations/{iid}/oauth/client",
                         json={"client_id": OWN_APP[0], "client_secret": OWN_APP[1]})  # fmt: skip
    assert r.status_code == 200, r.text
    return slug, iid


async def _move(dsn: str, slug: str, **urls: str) -> dict:
    """Point the entry's OAuth URLs elsewhere; its manifest. The entry is the platform's
    (register_deployed), whose operator may move a version in place: installs on it follow.
    A tenant's published version cannot change (test_pinning.py), so this stands for an
    address the rule refuses later, e.g. after the rule or the name's address changed."""
    manifest = (await fetch(dsn, "SELECT manifest FROM marketplace_connectors WHERE slug = $1",
                            slug))[0]["manifest"]  # fmt: skip
    manifest = {**manifest, "auth": {**manifest["auth"], **urls}}
    await fetch(dsn, "UPDATE marketplace_connectors SET manifest = $2 WHERE slug = $1",
                slug, manifest)  # fmt: skip
    return manifest


async def test_a_token_url_not_allowed_is_refused_at_connect_and_callback(world, side, dsn):
    """The suite allows only 127.0.0.1 here: a token URL on 127.0.0.2 (loopback, but outside
    that) or at the metadata address gets neither the code, the verifier nor the client secret."""
    t = await make_tenant(dsn, role=Role.editor)
    async with (
        oauth_servers.recording_endpoint("127.0.0.2") as outside,
        httpx.AsyncClient(base_url=world.suite.gateway, headers=t.headers) as client,
    ):
        slug, iid = await _own_entry(world, dsn, client)
        connect = f"/api/v1/integrations/{iid}/oauth/connect"
        callback = await _connect(world, client, iid)  # allowed when the connect started
        await _move(dsn, slug, token_url=outside.url)  # and not when the code is exchanged
        r = await callback.open()
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
        problem = r.json()
        assert problem["code"] == "oauth_provider_not_allowed"
        assert problem["detail"].startswith("the connector's token_url: ")
        assert (
            "127.0.0.2" in problem["detail"]
            and "SEEDOS_EGRESS_ALLOWED_NETWORKS" in problem["detail"]
        )
        # a new connect is refused up front, before the user is sent to consent for nothing
        for token_url in (outside.url, "http://169.254.169.254/latest/meta-data/iam/"):
            await _move(dsn, slug, token_url=token_url)
            r = await client.post(connect)
            assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
            assert r.json()["code"] == "oauth_provider_not_allowed", r.json()
        shown = (await client.get(f"/api/v1/integrations/{iid}")).json()
    assert outside.requests == []  # nothing was sent there, not even a connection
    assert shown["status"] == "pending" and shown["status_reason"] == NOT_CONNECTED, shown
    assert tokens.ACCESS_TOKEN not in await _stored(side, await _integration(dsn, iid))
    states = await fetch(dsn, "SELECT count(*) AS n FROM oauth_states WHERE integration_id = $1",
                         uuid.UUID(iid))  # fmt: skip
    assert states[0]["n"] == 0  # the first one used up by the callback, no other recorded


async def test_a_refresh_or_revocation_not_allowed_sends_nothing(world, side, dsn):
    """A connected install whose entry now names token and revocation URLs outside the rule:
    the refresh is refused and the install goes to ``error`` (as for a connector endpoint that
    is not allowed); uninstalling still works, its audit entry says the revocation was refused."""
    t = await make_tenant(dsn, role=Role.editor)
    async with oauth_servers.recording_endpoint("127.0.0.2") as outside:
        async with httpx.AsyncClient(base_url=world.suite.gateway, headers=t.headers) as client:
            slug, iid = await _own_entry(world, dsn, client)
            callback = await _connect(world, client, iid)
        assert (await callback.open()).status_code == 200
        assert (await _settled(dsn, iid))["status"] == "active"
        row = await _integration(dsn, iid)
        before = await _stored(side, row)
        moved = await _move(dsn, slug, token_url=outside.url, revoke_url=outside.url)

        # a call whose token the connector refuses (401) is answered by a refresh: refused
        async with side.db.connection() as conn:
            await credentials.store(conn, side.ring, tenant_id=row["tenant_id"],
                                    integration_id=row["id"],
                                    secrets={tokens.ACCESS_TOKEN: "a-token-the-provider-refuses"})  # fmt: skip
        async with httpx.AsyncClient(base_url=world.suite.gateway, headers=t.headers) as client:
            r = await client.post(f"/api/v1/integrations/{iid}/check")
            shown = (await client.get(f"/api/v1/integrations/{iid}")).json()
        assert r.status_code == 200 and shown["status"] == "error", (r.text, shown)
        reason = shown["status_reason"]
        assert reason.startswith("endpoint not allowed: the connector's token_url: "), reason
        assert "127.0.0.2" in reason

        # a refresh before expiry (what sync and the manager do): the same, nothing changed
        await fetch(dsn, "UPDATE integration_connectors SET status = 'active' WHERE id = $1",
                    row["id"])  # fmt: skip
        with pytest.raises(ProviderNotAllowed) as caught:
            await tokens.call_credentials(
                side.db, side.ring, integration=row, manifest=moved, oauth=side.oauth,
                force_refresh=True,
            )  # fmt: skip
        assert caught.value.status == 422 and caught.value.code == "oauth_provider_not_allowed"
        after = await _integration(dsn, iid)
        assert after["status"] == "error" and after["status_reason"] == reason
        stored = await _stored(side, row)
        assert stored[tokens.REFRESH_TOKEN] == before[tokens.REFRESH_TOKEN]

        async with httpx.AsyncClient(base_url=world.suite.gateway, headers=t.headers) as client:
            assert (await client.delete(f"/api/v1/integrations/{iid}")).status_code == 204
    assert outside.requests == []  # no refresh token, client secret or connection went there
    audit = await fetch(dsn, "SELECT payload FROM audit_logs WHERE tenant_id = $1"
                        " AND action = 'integration.deleted'", t.tenant_id)  # fmt: skip
    revocation = audit[0]["payload"]["token_revocation"]
    assert revocation.startswith("failed: endpoint not allowed: the connector's revoke_url: ")
    assert "127.0.0.2" in revocation
    # so the grant was not revoked at the provider (nor anywhere else)
    assert world.auth.refresh(before[tokens.REFRESH_TOKEN], client=OWN_APP).status_code == 200


async def test_callback_refusals_are_400_and_use_the_state_up(world, side, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    gateway = world.suite.gateway
    async with httpx.AsyncClient(base_url=gateway, headers=t.headers) as client:
        iid = await _install(world, client)
        starts = [(await client.post(f"/api/v1/integrations/{iid}/oauth/connect")).json()
                  for _ in range(2)]  # fmt: skip
    # each opened in the browser (the same one: the second start's cookie replaces the first's)
    opened = [await oauth_servers.open_start(s["authorization_url"]) for s in starts]
    denied, late = (parse_qs(urlsplit(url).query)["state"][0] for url, _ in opened)
    cookie = oauth_servers.with_binding(opened[0][1])
    await fetch(dsn, "UPDATE oauth_states SET expires_at = now() - interval '1 second'"
                " WHERE state_hash = sha256($1::bytea)", late.encode())  # fmt: skip
    async with httpx.AsyncClient(base_url=gateway) as browser:  # no API key
        cases = [
            ({"state": denied, "error": "access_denied"}, "oauth_denied"),
            ({"state": denied, "error": "access_denied"}, "oauth_state_invalid"),
            ({"state": late, "code": "x"}, "oauth_state_expired"),
            ({"state": late, "code": "x"}, "oauth_state_invalid"),
            ({"state": secrets.token_urlsafe(32), "code": "x"}, "oauth_state_invalid"),
            ({"code": "x"}, "oauth_state_invalid"),
        ]
        for params, code in cases:
            r = await browser.get(CALLBACK, params=params, headers=cookie)
            assert r.status_code == 400 and r.headers["content-type"] == PROBLEM, (params, r.text)
            assert r.json()["code"] == code, (params, r.json())
            assert r.headers["cache-control"] == "no-store"
        # only the start URL and the callback are public, and only for GET
        assert (await browser.post(CALLBACK, params={"state": "x"})).status_code == 401
        assert (await browser.post(START, params={"token": "x"})).status_code == 401
        assert (await browser.get(CALLBACK + "x")).status_code == 401
        assert (await browser.get(START + "x")).status_code == 401
        assert (await browser.get(f"/api/v1/integrations/{iid}")).status_code == 401
    left = await fetch(dsn, "SELECT count(*) AS n FROM oauth_states WHERE integration_id = $1",
                       uuid.UUID(iid))  # fmt: skip
    assert left[0]["n"] == 0
    row = await _integration(dsn, iid)
    assert row["status_reason"] == NOT_CONNECTED
    assert await _stored(side, row) == {}
    with pytest.raises(NotConnected):
        await tokens.call_credentials(
            side.db, side.ring, integration=row, manifest=world.manifest, oauth=side.oauth
        )


async def test_connect_refusals_change_nothing(world, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    viewer = await add_key(dsn, t, Role.viewer)
    async with httpx.AsyncClient(base_url=world.suite.gateway, headers=t.headers) as client:
        iid = await _install(world, client)
        connect = f"/api/v1/integrations/{iid}/oauth/connect"
        for return_to in ("https://evil.example/x", "//evil.example/x", "dashboard",
                          "http://127.0.0.1:1/x", "/\\evil.example"):  # fmt: skip
            r = await client.post(connect, json={"return_to": return_to})
            assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, return_to
            assert r.json()["code"] == "invalid_return_to", return_to
        ok = await client.post(connect, json={"return_to": world.suite.gateway + "/done"})
        assert ok.status_code == 200, ok.text
        r = await client.post(connect, headers=viewer.headers)
        assert r.status_code == 403
        r = await client.post(f"/api/v1/integrations/{uuid.uuid4()}/oauth/connect")
        assert r.status_code == 404 and r.json()["code"] == "integration_not_found"
        # a connector that does not use OAuth: its credentials go through PUT .../credentials
        r = await client.post("/api/v1/integrations", json={
            "connector": "postgresql", "credentials": {"password": "a-long-password"},
            "config": {"host": "db", "port": 5432, "database": "d", "username": "u"}})  # fmt: skip
        other = r.json()["id"]
        r = await client.post(f"/api/v1/integrations/{other}/oauth/connect")
        assert r.status_code == 422 and r.json()["code"] == "oauth_not_supported"
        r = await client.put(f"/api/v1/integrations/{other}/oauth/client",
                             json={"client_id": "a", "client_secret": "b"})  # fmt: skip
        assert r.status_code == 422 and r.json()["code"] == "oauth_not_supported"
        # an OAuth connector the platform has no client for (a real-world catalog entry)
        r = await client.post("/api/v1/integrations", json={"connector": "hubspot"})
        assert r.status_code == 201, r.text
        hubspot = r.json()["id"]
        r = await client.post(f"/api/v1/integrations/{hubspot}/oauth/connect")
        assert r.status_code == 422 and r.json()["code"] == "oauth_client_missing"
        r = await client.post(f"/api/v1/integrations/{iid}/disable")
        r = await client.post(connect)
        assert r.status_code == 409 and r.json()["code"] == "integration_disabled"
    states = await fetch(dsn, "SELECT integration_id FROM oauth_states WHERE tenant_id = $1",
                         t.tenant_id)  # fmt: skip
    assert [s["integration_id"] for s in states] == [uuid.UUID(iid)]  # the one that was valid


async def test_own_oauth_app_per_install(world, side, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    async with httpx.AsyncClient(base_url=world.suite.gateway, headers=t.headers) as client:
        iid = await _install(world, client)
        client_url = f"/api/v1/integrations/{iid}/oauth/client"
        r = await client.get(client_url)
        assert r.json() == {"override": False, "platform_client": True, "connected": False}
        r = await client.put(client_url, json={"client_id": OWN_APP[0],
                                               "client_secret": OWN_APP[1]})  # fmt: skip
        assert r.status_code == 200 and OWN_APP[1] not in r.text
        assert r.json()["override"] is True
        callback = await _connect(world, client, iid)
        assert parse_qs(urlsplit(callback.url).query)["code"]
    assert (await callback.open()).status_code == 200
    row = await _integration(dsn, iid)
    stored = await _stored(side, row)
    assert world.auth.introspect(stored["oauth.access_token"])["client_id"] == OWN_APP[0]
    # refreshes use the install's own app too (the platform's could not refresh its tokens)
    given = await tokens.call_credentials(
        side.db, side.ring, integration=row, manifest=world.manifest, oauth=side.oauth,
        force_refresh=True,
    )  # fmt: skip
    assert set(given) == {"access_token"}
    assert world.auth.introspect(given["access_token"])["client_id"] == OWN_APP[0]
    assert OWN_APP[1] not in world.suite.logs()
    async with httpx.AsyncClient(base_url=world.suite.gateway, headers=t.headers) as client:
        r = await client.delete(f"/api/v1/integrations/{iid}/oauth/client")
        assert r.json() == {"override": False, "platform_client": True, "connected": True}


async def test_uninstall_revokes_the_tokens_at_the_provider(world, side, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    iid = await _connected(world, t, dsn)
    row = await _integration(dsn, iid)
    stored = await _stored(side, row)
    assert world.auth.introspect(stored["oauth.access_token"])["active"] is True
    async with httpx.AsyncClient(base_url=world.suite.gateway, headers=t.headers) as client:
        assert (await client.delete(f"/api/v1/integrations/{iid}")).status_code == 204
    assert world.auth.introspect(stored["oauth.access_token"]) == {"active": False}
    refused = world.auth.refresh(stored["oauth.refresh_token"], client=PLATFORM)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    audit = await fetch(dsn, "SELECT payload FROM audit_logs WHERE tenant_id = $1"
                        " AND action = 'integration.deleted'", t.tenant_id)  # fmt: skip
    assert audit[0]["payload"]["token_revocation"] == "revoked"
    assert audit[0]["payload"]["credentials_erased"] == 3


async def test_other_schemes_get_their_credentials_as_stored(world, side, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    async with httpx.AsyncClient(base_url=world.suite.gateway, headers=t.headers) as client:
        r = await client.post("/api/v1/integrations", json={
            "connector": "postgresql", "credentials": {"password": "a-long-password"},
            "config": {"host": "db", "port": 5432, "database": "d", "username": "u"}})  # fmt: skip
        assert r.status_code == 201, r.text
        iid = r.json()["id"]
        row = await _integration(dsn, iid)
        manifest = (await fetch(dsn, "SELECT manifest FROM marketplace_connectors WHERE slug ="
                                " 'postgresql'"))[0]["manifest"]  # fmt: skip
        given = await tokens.call_credentials(
            side.db, side.ring, integration=row, manifest=manifest, oauth=side.oauth
        )
        assert given == {"password": "a-long-password"}
        assert (await client.delete(f"/api/v1/integrations/{iid}")).status_code == 204
    audit = await fetch(dsn, "SELECT payload FROM audit_logs WHERE tenant_id = $1"
                        " AND action = 'integration.deleted'", t.tenant_id)  # fmt: skip
    assert audit[0]["payload"]["token_revocation"] == "not_oauth"


async def test_oauth_states_are_closed_to_postgrest_roles(dsn):
    rows = await fetch(
        dsn,
        "SELECT relrowsecurity, has_table_privilege('anon', oid, 'SELECT') AS anon,"
        " has_table_privilege('authenticated', oid, 'SELECT') AS authed"
        " FROM pg_class WHERE oid = 'public.oauth_states'::regclass",
    )
    assert dict(rows[0]) == {"relrowsecurity": True, "anon": False, "authed": False}


async def test_oauth_urls_made_from_the_install_config(world, side, dsn):
    """A connector whose OAuth URLs name the install's config (a shop's or a subdomain's own
    authorization server) and add parameters of their own: the browser goes to the URL made
    from the config, with those parameters, the code is exchanged at the token URL made the same
    way; a config value that would move a URL to another host is refused before anything is
    sent or stored."""
    auth = world.manifest["auth"]
    host = urlsplit(auth["token_url"]).hostname
    templated = {key: auth[key].replace(f"//{host}:", "//{{ config.auth_host }}:")
                 for key in ("authorize_url", "token_url", "revoke_url") if key in auth}  # fmt: skip
    assert all("{{ config.auth_host }}" in url for url in templated.values())
    slug = f"templated-oauth-{secrets.token_hex(3)}"
    schema = json.loads(json.dumps(world.manifest["config_schema"]))
    schema.setdefault("properties", {})["auth_host"] = {"type": "string"}
    manifest = {**world.manifest, "name": slug, "display_name": f"Templated {slug}",
                "config_schema": schema,
                "auth": {**auth, **templated, "authorize_params": {"access_type": "offline",
                                                                   "state": "not-this"}}}  # fmt: skip
    conn = await db.connect(dsn)
    try:
        await register_deployed(conn, manifest=manifest, endpoint_url=world.connector,
                                category="crm", vendor="tests")  # fmt: skip
    finally:
        await conn.close()
    t = await make_tenant(dsn, role=Role.editor)
    async with httpx.AsyncClient(base_url=world.suite.gateway, headers=t.headers) as client:
        made = {}
        for name, auth_host in (("good", host), ("bad", "evil.example/steal?x="),
                                ("at", "evil.example#")):  # fmt: skip
            r = await client.post("/api/v1/integrations", json={
                "connector": slug, "config": {"base_url": world.crm, "auth_host": auth_host}})  # fmt: skip
            assert r.status_code == 201, r.text
            made[name] = r.json()["id"]
            r = await client.put(f"/api/v1/integrations/{made[name]}/oauth/client",
                                 json={"client_id": OWN_APP[0], "client_secret": OWN_APP[1]})  # fmt: skip
            assert r.status_code == 200, r.text
        for name in ("bad", "at"):
            r = await client.post(f"/api/v1/integrations/{made[name]}/oauth/connect")
            assert r.status_code == 422 and r.json()["code"] == "oauth_url_refused", r.text
        r = await client.post(f"/api/v1/integrations/{made['good']}/oauth/connect")
        assert r.status_code == 200, r.text
        authorization_url, binding = await oauth_servers.open_start(r.json()["authorization_url"])
        url = urlsplit(authorization_url)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        assert f"{url.scheme}://{url.netloc}{url.path}" == world.auth.issuer + "/auth"
        assert query["access_type"] == "offline" and query["state"] != "not-this"
        callback = await oauth_servers.approve(
            authorization_url, binding=binding, stop_at=world.suite.gateway + CALLBACK
        )
    async with httpx.AsyncClient() as browser:
        done = await browser.get(callback.url, headers=callback.cookie)
        assert done.status_code == 200 and "Connected" in done.text, done.text
    # the code was exchanged at the token URL made from the config: the tokens are stored (the
    # example connector's own check then refuses the config field it does not know: not ours)
    row = await _settled(dsn, made["good"])
    stored = await _stored(side, row)
    assert world.auth.introspect(stored["oauth.access_token"])["active"]
    states = await fetch(dsn, "SELECT integration_id FROM oauth_states WHERE tenant_id = $1",
                         t.tenant_id)  # fmt: skip
    assert {str(s["integration_id"]) for s in states} <= {made["good"]}  # none for the refused
