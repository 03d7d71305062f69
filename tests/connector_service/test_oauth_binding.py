"""A connect is bound to the browser that opens its start URL: the connect answers a gateway
start URL, which sets a ``__Host-`` binding cookie in the browser that opens it and redirects it
to the provider; the provider's redirect back is refused (and audited) in any other browser.
End to end, as in test_oauth.py: the three services, the npm oidc-provider authorization
server, the demo CRM and the example connector in oauth2 mode, all real processes."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.requests import Request

from common.roles import Role
from connector_service.integrations.service import NOT_CONNECTED
from connector_service.oauth import config as oauth_config
from gateway import proxy
from gateway.app import PUBLIC_PATHS
from tests.connector_service import oauth_servers
from tests.connector_service.oauth_servers import Approved, World
from tests.connector_service.rig import fetch
from tests.people import make_person
from tests.support import TenantKey, make_tenant

pytestmark = pytest.mark.skipif(
    not oauth_servers.available(), reason="needs node and `npm ci --prefix sdk/tests/oidc`"
)

PROBLEM = "application/problem+json"
CALLBACK, START = oauth_servers.CALLBACK, oauth_servers.START
COOKIE = oauth_config.BINDING_COOKIE


@pytest.fixture(scope="module")
async def world(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    # no cached verdicts in the gateway: a role changed in the database applies at once
    async with oauth_servers.running_world(
        dsn, tmp_path_factory.mktemp("binding"), SEEDOS_GATEWAY_API_KEY_CACHE_TTL_SECONDS="0"
    ) as running:
        yield running


async def _install(world: World, t: TenantKey) -> str:
    async with httpx.AsyncClient(base_url=world.suite.gateway, headers=t.headers) as client:
        r = await client.post("/api/v1/integrations",
                              json={"connector": world.slug, "config": {"base_url": world.crm}})  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _start_url(world: World, t: TenantKey, iid: str) -> str:
    """What an API key's connect answers."""
    async with httpx.AsyncClient(base_url=world.suite.gateway, headers=t.headers) as client:
        r = await client.post(f"/api/v1/integrations/{iid}/oauth/connect")
    assert r.status_code == 200, r.text
    return r.json()["authorization_url"]


async def _approved(world: World, t: TenantKey, iid: str) -> Approved:
    """A connect started with the API key, opened and approved in one browser."""
    start_url = await _start_url(world, t, iid)
    return await oauth_servers.consent(start_url, stop_at=world.suite.gateway + CALLBACK)


async def _refusals(dsn: str, t: TenantKey) -> list[dict]:
    rows = await fetch(dsn, "SELECT user_id, target, payload FROM audit_logs WHERE tenant_id = $1"
                       " AND action = 'integration.connect_refused' ORDER BY seq", t.tenant_id)  # fmt: skip
    return [dict(r) for r in rows]


async def _not_connected(world: World, t: TenantKey, iid: str) -> None:
    async with httpx.AsyncClient(base_url=world.suite.gateway, headers=t.headers) as client:
        shown = (await client.get(f"/api/v1/integrations/{iid}")).json()
        fields = (await client.get(f"/api/v1/integrations/{iid}/credentials")).json()
    assert shown["status"] == "pending" and shown["status_reason"] == NOT_CONNECTED, shown
    assert not any(f.startswith("oauth.") for f in fields["fields_set"]), fields


def _attributes(set_cookie: str) -> tuple[str, str, dict[str, str]]:
    """(name, value, {attribute (lower case): value}) of a Set-Cookie header."""
    pair, *attributes = (part.strip() for part in set_cookie.split(";"))
    name, _, value = pair.partition("=")
    found = {}
    for attribute in attributes:
        key, _, val = attribute.partition("=")
        found[key.lower()] = val
    return name, value, found


async def test_the_browser_that_opened_the_link_completes_the_connect(world, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    iid = await _install(world, t)
    start_url = await _start_url(world, t, iid)
    assert start_url.startswith(world.suite.gateway + START + "?token=")

    async with httpx.AsyncClient(timeout=30) as browser:  # no API key
        started = await browser.get(start_url)
    assert started.status_code == 303, started.text
    assert started.headers["location"].startswith(world.auth.issuer + "/auth?")
    assert started.headers["cache-control"] == "no-store"
    # the binding cookie: host-only (__Host-: Secure, Path=/, no Domain), out of scripts' reach,
    # sent on the provider's top-level redirect back (Lax), for as long as the connect lasts
    set_cookies = started.headers.get_list("set-cookie")
    assert len(set_cookies) == 1, set_cookies
    name, value, attributes = _attributes(set_cookies[0])
    assert name == COOKIE == "__Host-seedos_oauth"
    assert len(value) >= 43 and value == oauth_servers.binding_of(started)
    assert "secure" in attributes and "httponly" in attributes and "domain" not in attributes
    assert attributes["path"] == "/" and attributes["samesite"].lower() == "lax"
    assert attributes["max-age"] == "600"

    callback = await oauth_servers.approve(
        started.headers["location"], binding=value, stop_at=world.suite.gateway + CALLBACK
    )
    done = await callback.open()
    assert done.status_code == 200 and "Connected" in done.text, done.text
    assert done.headers["cache-control"] == "no-store"
    name, cleared, attributes = _attributes(done.headers["set-cookie"])
    assert name == COOKIE and cleared in ("", '""') and attributes["max-age"] == "0"
    assert "secure" in attributes and attributes["path"] == "/"  # else browsers ignore it
    async with httpx.AsyncClient(base_url=world.suite.gateway, headers=t.headers) as client:
        fields = (await client.get(f"/api/v1/integrations/{iid}/credentials")).json()
    assert "oauth.access_token" in fields["fields_set"]
    assert await _refusals(dsn, t) == []
    for secret in (value, urlsplit(start_url).query.removeprefix("token=")):
        assert secret not in world.suite.logs()


@pytest.mark.parametrize("browser", ["no_cookie", "another_browsers_cookie", "header_only"])
async def test_the_callback_in_another_browser_is_refused_and_audited(world, dsn, browser):
    """Tenant A opens its link and sends the provider's page on to someone else: their approval
    comes back to a browser without A's cookie. Refused, nothing connected, the state used up
    (the browser that started it cannot finish it either), and audited in A's tenant."""
    t = await make_tenant(dsn, role=Role.editor)
    iid = await _install(world, t)
    approved = await _approved(world, t, iid)
    other = await _approved(world, t, await _install(world, t))  # another browser's binding
    headers = {
        "no_cookie": {},
        "another_browsers_cookie": other.cookie,
        # a client cannot pass the binding itself: the gateway drops this header
        "header_only": {oauth_config.BINDING_HEADER: approved.binding},
    }[browser]
    async with httpx.AsyncClient(timeout=30) as stranger:
        r = await stranger.get(approved.url, headers=headers)
    assert r.status_code == 400 and r.headers["content-type"] == PROBLEM, r.text
    problem = r.json()
    assert problem["code"] == "connect_binding_mismatch", problem
    assert "another browser" in problem["detail"]
    assert r.headers["cache-control"] == "no-store" and "set-cookie" not in r.headers
    reason = "binding_mismatch" if browser == "another_browsers_cookie" else "no_binding_cookie"
    assert problem["reason"] == reason
    await _not_connected(world, t, iid)

    refusals = await _refusals(dsn, t)
    assert [a["payload"] for a in refusals] == [{"integration_id": iid, "reason": reason}]
    assert refusals[0]["user_id"] == f"apikey:{t.key_id}"  # who started the connect
    assert refusals[0]["target"] == f"integration:{iid}"
    code = parse_qs(urlsplit(approved.url).query)["code"][0]
    for secret in (approved.binding, other.binding, code):
        assert secret not in json.dumps(refusals) and secret not in world.suite.logs()

    # the state was used up: the browser that started the connect now starts again
    again = await approved.open()
    assert again.status_code == 400 and again.json()["code"] == "oauth_state_invalid"
    await _not_connected(world, t, iid)
    # the other connect, in its own browser, is untouched
    assert (await other.open()).status_code == 200


async def test_the_start_link_is_single_use(world, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    iid = await _install(world, t)
    start_url = await _start_url(world, t, iid)
    # opened twice at once (a double click, or someone racing the user): one browser gets it
    async with httpx.AsyncClient(timeout=30) as one, httpx.AsyncClient(timeout=30) as two:
        answers = await asyncio.gather(one.get(start_url), two.get(start_url))
    assert sorted(a.status_code for a in answers) == [303, 400], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 400)
    assert refused.headers["content-type"] == PROBLEM
    assert refused.json()["code"] == "connect_start_invalid", refused.json()
    assert "set-cookie" not in refused.headers and "location" not in refused.headers
    async with httpx.AsyncClient(base_url=world.suite.gateway, timeout=30) as browser:
        again = await browser.get(start_url)
        assert again.status_code == 400 and again.json()["code"] == "connect_start_invalid"
        for params in ({"token": secrets.token_urlsafe(32)}, {"token": ""}, {}):
            r = await browser.get(START, params=params)
            assert r.status_code == 400 and r.headers["content-type"] == PROBLEM, (params, r.text)
            assert r.json()["code"] == "connect_start_invalid", (params, r.json())
        r = await browser.get(START, params={"token": "x" * 600})
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
        # nothing but GET (and HEAD) is public there, and there is no body to send
        assert (await browser.post(START, params={"token": "x"})).status_code == 401
        assert PUBLIC_PATHS[START] == 0


async def test_an_expired_start_link_is_refused(world, dsn):
    t = await make_tenant(dsn, role=Role.editor)
    iid = await _install(world, t)
    start_url = await _start_url(world, t, iid)
    await fetch(dsn, "UPDATE oauth_states SET expires_at = now() - interval '1 second'"
                " WHERE integration_id = $1", uuid.UUID(iid))  # fmt: skip
    async with httpx.AsyncClient(timeout=30) as browser:
        r = await browser.get(start_url)
    assert r.status_code == 400 and r.headers["content-type"] == PROBLEM, r.text
    assert r.json()["code"] == "connect_start_expired"
    assert "set-cookie" not in r.headers and "location" not in r.headers
    rows = await fetch(dsn, "SELECT binding_hash, started_at FROM oauth_states"
                       " WHERE integration_id = $1", uuid.UUID(iid))  # fmt: skip
    assert [dict(r) for r in rows] == [{"binding_hash": None, "started_at": None}]


async def test_the_openapi_says_where_to_open_the_link(world):
    async with httpx.AsyncClient(base_url=world.suite.gateway) as client:
        document = (await client.get("/openapi.json")).json()
    start = document["paths"][START]["get"]
    assert "303" in start["responses"] and "__Host-seedos_oauth" in start["description"]
    connect = document["components"]["schemas"]["ConnectOut"]["properties"]
    assert "browser that will approve" in connect["authorization_url"]["description"]


def _forwarded(path: str, *headers: tuple[str, str]) -> dict[str, list[str]]:
    """What the gateway's proxy sends on for a request to ``path`` with these headers."""
    request = Request({
        "type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
        "query_string": b"", "scheme": "http", "client": ("203.0.113.7", 5000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
    })  # fmt: skip
    sent = proxy._forward_headers(request, "internal-token", "request-id")
    return {k: sent.getall(k) for k in sent}


def test_the_gateway_forwards_the_binding_and_no_other_cookie():
    binding = secrets.token_urlsafe(32)
    cookies = ("cookie", f"session=s3cret; {COOKIE}={binding}; theme=dark")
    own = (proxy.BINDING_HEADER, "what-the-client-claims")
    assert proxy.BINDING_COOKIE == COOKIE and proxy.BINDING_HEADER == oauth_config.BINDING_HEADER
    assert proxy.OAUTH_BINDING_PATHS == {START, CALLBACK} <= set(PUBLIC_PATHS)
    for path in (START, CALLBACK):
        sent = _forwarded(path, cookies, own)
        assert sent[proxy.BINDING_HEADER] == [binding]  # the cookie's, never the client's header
        assert "cookie" not in sent and "s3cret" not in repr(sent)
        # split over two Cookie headers (HTTP/2), quoted, or spaced: the same value
        for variant in (("cookie", "a=b"), ("cookie", f'{COOKIE}="{binding}"')):
            assert _forwarded(path, variant, ("cookie", f"{COOKIE}={binding}"))[
                proxy.BINDING_HEADER
            ] == [binding]
        # without the cookie, or with one that is not a binding: no header at all
        for headers in ((own,), (("cookie", f"x{COOKIE}={binding}"), own),
                        (("cookie", f"{COOKIE}=a b;c"),), (("cookie", f"{COOKIE}=" + "a" * 200),)):  # fmt: skip
            assert proxy.BINDING_HEADER not in _forwarded(path, *headers), headers
    # anywhere else: neither the cookie nor a header the client sent
    for path in ("/api/v1/integrations", f"/api/v1/integrations/{uuid.uuid4()}/oauth/connect",
                 CALLBACK + "/x", "/api/v1/marketplace/connectors"):  # fmt: skip
        sent = _forwarded(path, cookies, own)
        assert proxy.BINDING_HEADER not in sent and "cookie" not in sent, path


async def test_a_connect_a_person_started_opens_only_where_they_are_signed_in(world, dsn, conn):
    """A link passed on (tenant A's admin sends it to someone) is refused in every browser
    but one where the person who started the connect is signed in."""
    t = await make_tenant(dsn, role=Role.editor)
    iid = await _install(world, t)
    ann, bob = [
        await make_person(conn, origin=world.suite.gateway, tenant_id=t.tenant_id, role="editor")
        for _ in range(2)
    ]
    async with httpx.AsyncClient(base_url=world.suite.gateway, timeout=30) as client:
        r = await client.post(f"/api/v1/integrations/{iid}/oauth/connect", headers=ann.headers)
        assert r.status_code == 200, r.text
        start_url = r.json()["authorization_url"]
        for headers in (bob.cookie, {}):
            refused = await client.get(start_url, headers=headers)
            assert refused.status_code == 403, refused.text
            assert refused.json()["code"] == "connect_other_person"
            assert "set-cookie" not in refused.headers and "location" not in refused.headers
        opened = await client.get(start_url, headers=ann.cookie)
        assert opened.status_code == 303, opened.text
        assert opened.headers["set-cookie"].startswith(COOKIE + "=")


async def test_nothing_connects_to_a_suspended_tenant(world, dsn):
    """The start link and the callback are public paths, which the gateway's suspension check
    does not cover: the service refuses them itself."""
    t = await make_tenant(dsn, role=Role.editor)
    iid = await _install(world, t)
    suspend = "UPDATE tenants SET suspended_at = now() WHERE id = $1"
    start_url = await _start_url(world, t, iid)
    await fetch(dsn, suspend, t.tenant_id)
    async with httpx.AsyncClient(timeout=30) as browser:
        refused = await browser.get(start_url)
    assert refused.status_code == 403 and refused.json()["code"] == "tenant_suspended"
    assert "set-cookie" not in refused.headers
    # approved before the suspension, called back after it: the state is used up, nothing kept
    await fetch(dsn, "UPDATE tenants SET suspended_at = NULL WHERE id = $1", t.tenant_id)
    approved = await _approved(world, t, iid)
    await fetch(dsn, suspend, t.tenant_id)
    done = await approved.open()
    assert done.status_code == 403 and done.json()["code"] == "tenant_suspended", done.text
    rows = await fetch(dsn, "SELECT field FROM credentials WHERE integration_id = $1",
                       uuid.UUID(iid))  # fmt: skip
    assert "oauth.access_token" not in {r["field"] for r in rows}
    # the refused start left its connect as it was (its link unused); the called-back one is gone
    states = await fetch(dsn, "SELECT started_at FROM oauth_states WHERE integration_id = $1",
                         uuid.UUID(iid))  # fmt: skip
    assert [r["started_at"] for r in states] == [None]


async def test_a_connect_opens_only_while_its_starter_may_still_connect(world, dsn, conn):
    t = await make_tenant(dsn, role=Role.editor)
    iid = await _install(world, t)
    ann = await make_person(conn, origin=world.suite.gateway, tenant_id=t.tenant_id, role="editor")
    async with httpx.AsyncClient(base_url=world.suite.gateway, timeout=30) as client:
        r = await client.post(f"/api/v1/integrations/{iid}/oauth/connect", headers=ann.headers)
        assert r.status_code == 200, r.text
        start_url = r.json()["authorization_url"]
        # made a viewer meanwhile (or removed): the link she started no longer opens
        await fetch(dsn, "UPDATE memberships SET role = 'viewer' WHERE user_id = $1",
                    ann.user_id)  # fmt: skip
        refused = await client.get(start_url, headers=ann.cookie)
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "connect_other_person"
        # no binding cookie (her session's id rotates for the new role: that cookie is set)
        assert COOKIE not in refused.headers.get("set-cookie", "")
