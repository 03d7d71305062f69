"""People sign in to the gateway through a real OpenID provider (server.mjs) in Chromium, and
what their session then is: cookie attributes, id rotation, idle and absolute expiry, logout
through the provider, refused callbacks, one user per (issuer, subject), CSRF, security
headers on every route, WebSockets closed when their session ends, and the sign-in rate limit.

Two gateways (with their services) run for the whole module, started at once: ``main``, with
two providers (``alpha`` and ``beta``, two server.mjs instances that both know alice), and
``short``, with tiny session lifetimes and a small sign-in rate, on ``alpha`` only. Each test
signs in people of its own (the provider's login name is the subject), so no test depends on
another's users or sessions."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import aiohttp
import httpx
import pytest
from aiohttp import web
from playwright.async_api import BrowserContext, Page, Response, Route

from gateway.sessions import cookies, tokens
from gateway.sessions import service as sessions
from gateway.users import repository as users
from gateway.users import service as user_service
from seedos_cli.supervisor import SERVICES
from tests.conftest import Suite, start_suite
from tests.connector_service.oauth_servers import AuthServer
from tests.oidc_people import (
    PEOPLE,
    oidc_provider,
    sign_in_at_provider,
    sign_out_at_provider,
    web_client,
)
from tests.support import connected, free_port, make_tenant, set_cookie, set_cookies

pytestmark = pytest.mark.timeout(120)

SESSION, LOGIN = cookies.SESSION, cookies.LOGIN
CLIENT = ("seedos-gateway", "seedos-gateway-secret")
# Everyone the providers know: PEOPLE, and the people of each test (login name = subject)
TESTERS = ("erin", "frank", "gina", "hank", "ivy", "judy", "kim", "liam", "mia", "noah", "olga",
           "pete", "quinn", "rosa")  # fmt: skip
ACCOUNTS = {
    **PEOPLE,
    **{
        login: {"email": f"{login}@example.com", "email_verified": True, "name": login.title()}
        for login in TESTERS
    },
}
IDLE_MINUTES, ABSOLUTE_HOURS = 0.05, 0.002  # the short gateway's sessions: 3 s idle, 7.2 s in all
SHORT_RATE = 10  # sign-ins per minute and address on the short gateway: a burst of 5
PROBLEM = "application/problem+json"


@dataclass
class World:
    main: Suite
    short: Suite
    alpha: AuthServer
    beta: AuthServer
    dsn: str

    @property
    def gateway(self) -> str:
        return self.main.gateway


def _providers(**servers: AuthServer) -> str:
    return json.dumps({
        name: {"issuer": server.issuer, "client_id": CLIENT[0], "client_secret": CLIENT[1],
               "display_name": name.title()}
        for name, server in servers.items()
    })  # fmt: skip


def _distinct_ports(count: int) -> list[dict[str, int]]:
    while True:
        ports = [{spec.name: free_port() for spec in SERVICES} for _ in range(count)]
        if len({p for group in ports for p in group.values()}) == count * len(SERVICES):
            return ports


@pytest.fixture(scope="module")
def world(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    logs = tmp_path_factory.mktemp("sign-in")
    main_ports, short_ports = _distinct_ports(2)
    gateways = [f"http://127.0.0.1:{p['gateway']}" for p in (main_ports, short_ports)]
    client = web_client(
        *CLIENT,
        redirect_uris=[g + "/auth/callback" for g in gateways],
        post_logout_redirect_uris=[g + "/auth/signed-out" for g in gateways],
    )
    with ExitStack() as stack:
        alpha, beta = (
            stack.enter_context(
                oidc_provider(clients=[client], accounts=ACCOUNTS, log_path=logs / f"{name}.log")
            )
            for name in ("alpha", "beta")
        )
        main_env = {
            "SEEDOS_GATEWAY_OIDC_PROVIDERS": _providers(alpha=alpha, beta=beta),
            "SEEDOS_GATEWAY_AUTH_RATE_PER_MINUTE": "10000",
        }
        short_env = {
            "SEEDOS_GATEWAY_OIDC_PROVIDERS": _providers(alpha=alpha),
            "SEEDOS_GATEWAY_SESSION_IDLE_MINUTES": str(IDLE_MINUTES),
            "SEEDOS_GATEWAY_SESSION_ABSOLUTE_HOURS": str(ABSOLUTE_HOURS),
            "SEEDOS_GATEWAY_AUTH_RATE_PER_MINUTE": str(SHORT_RATE),
        }
        # Both start at once (half the wait), each from a thread that lives as long as the
        # suite: the services die with the thread that started them (PR_SET_PDEATHSIG).
        pool = ThreadPoolExecutor(2, thread_name_prefix="suite")
        stack.callback(pool.shutdown)
        starting = [
            pool.submit(start_suite, dsn, logs / "main.log", ports=main_ports, **main_env),
            pool.submit(start_suite, dsn, logs / "short.log", ports=short_ports, **short_env),
        ]
        for future in starting:
            if future.exception() is None:
                stack.callback(future.result().supervisor.stop)
        main, short = (future.result() for future in starting)
        yield World(main=main, short=short, alpha=alpha, beta=beta, dsn=dsn)


# ---------------------------------------------------------------------------------- helpers


async def tenant_id(dsn: str, slug: str) -> uuid.UUID:
    async with connected(dsn) as conn:
        return await conn.fetchval("SELECT id FROM tenants WHERE slug = $1", slug)


async def known_person(
    dsn: str, issuer: str, login: str, memberships: dict[uuid.UUID, str]
) -> uuid.UUID:
    """Makes the user ``login`` at ``issuer`` is, as their first sign-in would, with these
    memberships: they then sign in to an account that exists."""
    claims = ACCOUNTS[login]
    async with connected(dsn) as conn, conn.transaction():
        user, _ = await user_service.sign_in(conn, user_service.Identity(
            issuer=issuer, subject=login, provider="alpha", email=claims["email"],
            email_verified=claims["email_verified"], name=claims["name"],
        ))  # fmt: skip
        for tid, role in memberships.items():
            await users.add_membership(
                conn, tenant_id=tid, user_id=user["id"], role=role, created_by="test"
            )
    return user["id"]


async def sign_in(
    page: Page,
    gateway: str,
    login: str,
    *,
    provider: str = "alpha",
    return_to: str = "/",
    **query: str,
) -> None:
    """``login`` signs in from ``page`` through ``provider``, and lands on ``return_to``."""
    params = {"provider": provider, "return_to": return_to, **query}
    await page.goto(f"{gateway}/auth/login?{urlencode(params)}")
    await sign_in_at_provider(page, login)
    await page.wait_for_load_state()
    assert page.url == gateway + return_to, (page.url, await page.content())


async def browser_cookie(context: BrowserContext, name: str = SESSION) -> dict | None:
    found = [c for c in await context.cookies() if c["name"] == name]
    assert len(found) <= 1, found
    return found[0] if found else None


async def session_value(context: BrowserContext) -> str:
    cookie = await browser_cookie(context)
    assert cookie is not None, "no session cookie in the browser"
    return cookie["value"]


@dataclass
class Answer:
    status: int
    body: Any


_FETCH = """async ([url, method, body, headers, extra]) => {
    const init = {method, headers: {...headers}, ...extra};
    if (body !== null) {
        init.headers['content-type'] = 'application/json';
        init.body = JSON.stringify(body);
    }
    try {
        const r = await fetch(url, init);
        const text = await r.text();
        let parsed = text;
        try { parsed = JSON.parse(text); } catch (e) {}
        return {status: r.status, body: parsed};
    } catch (e) {
        return {status: 0, body: String(e)};
    }
}"""


async def fetch(
    page: Page,
    url: str,
    *,
    method: str = "GET",
    body: Any = None,
    csrf: str | None = None,
    **extra: Any,
) -> Answer:
    """``fetch`` as a script of the page's own origin runs it (the browser adds the cookies,
    Origin and Sec-Fetch-Site it sends with such a request)."""
    headers = {"x-csrf-token": csrf} if csrf else {}
    got = await page.evaluate(_FETCH, [url, method, body, headers, extra])
    return Answer(got["status"], got["body"])


async def replay(gateway: str, secret: str, path: str = "/api/v1/me", **kw: Any) -> httpx.Response:
    """A GET with the session cookie ``secret``, from outside the browser."""
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
        return await client.get(path, headers={"cookie": f"{SESSION}={secret}"}, **kw)


def same_site_headers(gateway: str, secret: str) -> dict[str, str]:
    """What the browser sends with a script's unsafe request from the gateway's own page."""
    return {
        "cookie": f"{SESSION}={secret}",
        "origin": gateway,
        "sec-fetch-site": "same-origin",
        "x-csrf-token": tokens.derive(secret, "csrf"),
    }


async def until(check, *, within: float, every: float = 0.2):
    """``check()`` (async) until it returns something truthy, for at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        if got := await check():
            return got
        assert time.monotonic() < deadline, "gave up waiting"
        await asyncio.sleep(every)


async def end_grace(dsn: str, session_id: str) -> None:
    """Move the session's last rotation past the grace period, as if 10 s had passed."""
    async with connected(dsn) as conn:
        await conn.execute(
            "UPDATE sessions SET rotated_at = now() - interval '11 seconds' WHERE id = $1",
            uuid.UUID(session_id),
        )


# ---------------------------------------------------------------------------------- 1. sign in


async def test_signing_in_lands_on_return_to_with_a_host_only_http_only_session(
    world: World,
    new_browser,
):
    context = await new_browser()
    page = await context.new_page()
    await sign_in(page, world.gateway, "erin", return_to="/?from=sign-in")
    assert "Signed in as Erin in no tenant yet" in await page.locator("main").inner_text()

    me = await fetch(page, "/api/v1/me")
    assert me.status == 200, me.body
    body = me.body
    assert body["auth_method"] == "session"
    assert body["subject"] == f"user:{body['user']['id']}"
    assert body["user"] | {"id": None} == {
        "id": None, "email": "erin@example.com", "email_verified": True, "name": "Erin",
    }  # fmt: skip
    # a first sign-in makes a user in no tenant
    assert body["memberships"] == [] and body["tenant"] is None and body["role"] is None
    assert body["permissions"] == [] and body["operator"] is False
    assert body["session"]["provider"] == "alpha" and body["csrf_token"]

    cookie = await browser_cookie(context)
    assert cookie is not None
    assert (cookie["domain"], cookie["path"]) == ("127.0.0.1", "/")  # host-only: no Domain
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
    assert SESSION not in await page.evaluate("document.cookie")  # no script reads it
    assert await browser_cookie(context, LOGIN) is None  # the sign-in's cookie is gone
    async with connected(world.dsn) as conn:
        identity = await conn.fetchrow(
            "SELECT user_id, provider, email, email_verified FROM user_identities"
            " WHERE issuer = $1 AND subject = 'erin'",
            world.alpha.issuer,
        )
    assert str(identity["user_id"]) == body["user"]["id"]
    assert (identity["provider"], identity["email"], identity["email_verified"]) == (
        "alpha", "erin@example.com", True)  # fmt: skip

    # made a member of the demo tenant, she signs in again (the provider remembers her: no
    # pages there) and lands in it
    demo = await tenant_id(world.dsn, "demo")
    async with connected(world.dsn) as conn:
        await users.add_membership(
            conn, tenant_id=demo, user_id=identity["user_id"], role="editor", created_by="test"
        )
    await sign_in(page, world.gateway, "erin", return_to="/integrations?tab=mine")
    me = await fetch(page, "/api/v1/me")
    assert me.status == 200, me.body
    assert me.body["tenant"]["slug"] == "demo" and me.body["role"] == "editor"
    assert me.body["permissions"] == ["read", "write"]
    assert [(m["slug"], m["role"]) for m in me.body["memberships"]] == [("demo", "editor")]
    await page.goto(world.gateway + "/")
    assert "in demo as editor" in await page.locator("#session-note").inner_text()


# ---------------------------------------------------------------------------------- 2. rotation


async def test_the_session_id_rotates_at_sign_in_tenant_switch_and_role_change(
    world: World,
    new_browser,
):
    demo = await tenant_id(world.dsn, "demo")
    other = await make_tenant(world.dsn)
    user_id = await known_person(
        world.dsn, world.alpha.issuer, "frank", {demo: "viewer", other.tenant_id: "admin"}
    )
    context = await new_browser()
    page = await context.new_page()
    gw = world.gateway

    # every sign-in gives a new id, and ends the session the browser held
    await sign_in(page, gw, "frank", tenant="demo")
    first = await session_value(context)
    assert (await replay(gw, first)).json()["tenant"]["slug"] == "demo"
    await sign_in(page, gw, "frank", tenant="demo")
    second = await session_value(context)
    assert second != first
    old = await replay(gw, first)
    assert old.status_code == 401 and old.json()["code"] == "session_expired"
    me = await fetch(page, "/api/v1/me")
    assert me.body["tenant"]["slug"] == "demo" and me.body["role"] == "viewer"
    session_id = me.body["session"]["id"]
    async with connected(world.dsn) as conn:
        ended = await conn.fetchval(
            "SELECT count(*) FROM sessions WHERE user_id = $1 AND end_reason = 'signed_in_again'",
            user_id,
        )
    assert ended == 1

    # switching tenant: a new id and CSRF token; the old token is refused from now on
    switched = await fetch(
        page, "/api/v1/me/tenant", method="POST", body={"tenant": other.slug},
        csrf=me.body["csrf_token"],
    )  # fmt: skip
    assert switched.status == 200, switched.body
    assert switched.body["tenant"]["slug"] == other.slug and switched.body["role"] == "admin"
    assert switched.body["session"]["id"] == session_id  # the same session, renamed
    third = await session_value(context)
    assert third != second and switched.body["csrf_token"] == tokens.derive(third, "csrf")
    assert (await replay(gw, third)).json()["tenant"]["slug"] == other.slug
    stale = await fetch(
        page, "/api/v1/me/tenant", method="POST", body={"tenant": "demo"},
        csrf=me.body["csrf_token"],
    )  # fmt: skip
    assert stale.status == 403 and stale.body["code"] == "csrf_refused"
    # the previous id works for a grace period (requests on their way), then not
    assert (await replay(gw, second)).json()["tenant"]["slug"] == other.slug
    await end_grace(world.dsn, session_id)

    async def second_refused():
        return (await replay(gw, second)).status_code == 401

    await until(second_refused, within=5)

    # a role change: the next answer (once the gateway's 2 s cache has let go) sets a new id
    async with connected(world.dsn) as conn:
        await conn.execute(
            "UPDATE memberships SET role = 'viewer' WHERE tenant_id = $1 AND user_id = $2",
            other.tenant_id, user_id,
        )  # fmt: skip

    async def demoted():
        answer = await fetch(page, "/api/v1/me")
        return answer if answer.body["role"] == "viewer" else None

    me = await until(demoted, within=5)
    fourth = await session_value(context)
    assert fourth != third and me.body["csrf_token"] == tokens.derive(fourth, "csrf")
    now = await replay(gw, fourth)
    assert now.status_code == 200 and now.json()["role"] == "viewer"
    assert not set_cookies(now, SESSION)  # rotated once, not on every answer
    assert me.body["permissions"] == ["read"]
    assert (await replay(gw, third)).status_code == 200  # within the grace period
    await end_grace(world.dsn, session_id)

    async def third_refused():
        return (await replay(gw, third)).status_code == 401

    await until(third_refused, within=5)
    assert (await fetch(page, "/api/v1/me")).status == 200  # the browser has the new one


# ---------------------------------------------------------------------------------- 3. expiry


def _at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


async def test_sessions_end_when_idle_and_at_their_absolute_end(
    world: World,
    new_browser,
):
    gw = world.short.gateway
    idle, absolute = IDLE_MINUTES * 60, ABSOLUTE_HOURS * 3600
    pages = [await (await new_browser()).new_page() for _ in range(2)]
    # at once: either session would be idle for good while the other signs in on a slow day
    await asyncio.gather(sign_in(pages[0], gw, "gina"), sign_in(pages[1], gw, "hank"))
    idle_secret, absolute_secret = [await session_value(p.context) for p in pages]
    # the cookie lives as long as the session can
    cookie = await browser_cookie(pages[1].context)
    assert cookie is not None and abs(cookie["expires"] - (time.time() + absolute)) < 3

    first = await replay(gw, idle_secret)
    asked = time.time()
    assert first.status_code == 200, first.text
    session = first.json()["session"]
    assert abs(_at(session["expires_at"]) - (asked + idle)) < 1.5  # now + idle (sliding)
    assert session["expires_at"] == session["idle_expires_at"]
    assert abs(_at(session["absolute_expires_at"]) - _at(session["created_at"]) - absolute) < 0.1

    async def left_idle() -> httpx.Response:
        await asyncio.sleep(idle + 1.5)  # nothing in between; past the gateway's cache too
        return await replay(gw, idle_secret)

    async def used_every_second() -> list[tuple[float, httpx.Response]]:
        answers = []
        while True:
            answer = await replay(gw, absolute_secret)
            answers.append((time.time(), answer))
            if answer.status_code != 200 or len(answers) > 15:
                return answers
            await asyncio.sleep(1)

    idled, used = await asyncio.gather(left_idle(), used_every_second())
    assert idled.status_code == 401 and idled.json()["code"] == "session_expired"

    ends = _at(used[0][1].json()["session"]["absolute_expires_at"])
    at, last = used[-1]
    assert last.status_code == 401 and last.json()["code"] == "session_expired", last.text
    # never refused before its absolute end (each use slid the idle expiry, never past the
    # absolute end), and refused at most the gateway's cache (2 s) and one interval after it
    for _when, answer in used[:-1]:
        assert answer.status_code == 200
        assert _at(answer.json()["session"]["idle_expires_at"]) <= ends
    assert used[-2][0] < ends + 2.5 and ends <= at < ends + 3.5, (ends, at)
    assert len(used) >= 4


# ---------------------------------------------------------------------------------- 4. logout


async def test_signing_out_ends_the_session_and_goes_through_the_providers_logout(
    world: World,
    new_browser,
):
    context = await new_browser()
    page = await context.new_page()
    gw = world.gateway
    await sign_in(page, gw, "ivy")
    secret = await session_value(context)
    session_id = (await fetch(page, "/api/v1/me")).body["session"]["id"]

    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(lambda url: not url.startswith(gw + "/"))
    assert urlsplit(page.url).netloc == urlsplit(world.alpha.issuer).netloc  # at the provider
    landed = await sign_out_at_provider(page)
    assert landed == gw + "/auth/signed-out"
    assert "You are signed out" in await page.locator("main").inner_text()
    logout = [u for u in seen if u.startswith(world.alpha.endpoints["end_session_endpoint"])]
    assert logout and parse_qs(urlsplit(logout[0]).query) == {
        "client_id": [CLIENT[0]], "post_logout_redirect_uri": [gw + "/auth/signed-out"],
    }  # fmt: skip

    assert await browser_cookie(context) is None  # cleared
    replayed = await replay(gw, secret)  # and ended server-side
    assert replayed.status_code == 401 and replayed.json()["code"] == "session_expired"
    async with connected(world.dsn) as conn:
        row = await conn.fetchrow(
            "SELECT ended_at, end_reason FROM sessions WHERE id = $1", uuid.UUID(session_id)
        )
    assert row["ended_at"] is not None and row["end_reason"] == "logout"
    # signed out at the provider too: signing in asks who she is again
    await page.goto(f"{gw}/auth/login?provider=alpha")
    assert await page.locator('input[name="login"]').is_visible()


# ---------------------------------------------------------------------------------- 5. refusals


def callback_answers(context: BrowserContext) -> list[Response]:
    """What the gateway answers the browser's callbacks from now on."""
    answers: list[Response] = []
    context.on("response", lambda r: answers.append(r)
               if urlsplit(r.url).path == "/auth/callback" else None)  # fmt: skip
    return answers


async def _problem(response: Response | None) -> dict:
    assert response is not None
    assert response.status == 400, await response.text()
    assert response.headers["content-type"] == PROBLEM
    return await response.json()


async def test_a_forged_state_is_refused_and_uses_the_sign_in_up(
    world: World,
    new_browser,
):
    context = await new_browser()
    at_provider, forged = await context.new_page(), await context.new_page()
    await at_provider.goto(f"{world.gateway}/auth/login?provider=alpha")
    assert await browser_cookie(context, LOGIN) is not None
    query = urlencode({"state": "forged-" + "x" * 36, "code": "anything"})
    problem = await _problem(await forged.goto(f"{world.gateway}/auth/callback?{query}"))
    assert problem["code"] == "state_mismatch"
    assert await browser_cookie(context, LOGIN) is None
    # the sign-in it pretended to finish cannot be finished any more
    answers = callback_answers(context)
    await sign_in_at_provider(at_provider, "pete")
    assert urlsplit(at_provider.url).path == "/auth/callback" and len(answers) == 1
    assert (await _problem(answers[0]))["code"] == "login_flow_missing"
    assert await browser_cookie(context) is None


async def test_a_callback_opened_again_signs_nobody_in(
    world: World,
    new_browser,
):
    context = await new_browser()
    page = await context.new_page()
    gw = world.gateway
    callbacks: list[str] = []
    context.on("request", lambda r: callbacks.append(r.url) if "/auth/callback?" in r.url else 0)
    await page.goto(f"{gw}/auth/login?provider=alpha")
    login_secret = (await browser_cookie(context, LOGIN) or {}).get("value")
    assert login_secret
    await sign_in_at_provider(page, "kim")
    await page.wait_for_load_state()
    assert page.url == gw + "/" and len(callbacks) == 1
    secret = await session_value(context)

    # in the same browser (its sign-in cookie is gone with the success)
    problem = await _problem(await page.goto(callbacks[0]))
    assert problem["code"] == "login_flow_missing"
    assert await session_value(context) == secret  # still the session it had
    # with the sign-in cookie it had: the flow is used up
    async with httpx.AsyncClient(timeout=10) as client:
        again = await client.get(callbacks[0], headers={"cookie": f"{LOGIN}={login_secret}"})
    assert again.status_code == 400 and again.json()["code"] == "login_flow_invalid"
    assert not set_cookies(again, SESSION) and "location" not in again.headers
    async with connected(world.dsn) as conn:
        live = await conn.fetchval(
            "SELECT count(*) FROM sessions s JOIN user_identities i USING (user_id)"
            " WHERE i.issuer = $1 AND i.subject = 'kim' AND s.ended_at IS NULL",
            world.alpha.issuer,
        )
    assert live == 1
    assert (await replay(gw, secret)).status_code == 200


async def started_elsewhere(gateway: str, **params: str) -> tuple[str, str]:
    """A sign-in started outside the browser: where it sends the browser, and the value of
    the sign-in cookie it set. (Playwright's routes do not see a redirect's target, so this is
    how a test gets between the gateway and the provider.)"""
    async with httpx.AsyncClient(timeout=10) as client:
        started = await client.get(f"{gateway}/auth/login", params={"provider": "alpha", **params})
    assert started.status_code == 303, started.text
    return started.headers["location"], set_cookie(started, LOGIN)


async def test_a_callback_in_a_browser_that_did_not_start_the_sign_in_is_refused(
    world: World,
    new_browser,
):
    # someone else started it (as a login-CSRF attacker would), this browser finishes it
    to_provider, login_secret = await started_elsewhere(world.gateway)
    context = await new_browser()
    page = await context.new_page()
    answers = callback_answers(context)
    await page.goto(to_provider)
    await sign_in_at_provider(page, "liam")
    assert len(answers) == 1
    assert (await _problem(answers[0]))["code"] == "login_flow_missing"
    assert await browser_cookie(context) is None
    # the one who started it still could: the attempt elsewhere spent nothing
    async with httpx.AsyncClient(timeout=10) as client:
        done = await client.get(answers[0].url, headers={"cookie": f"{LOGIN}={login_secret}"})
    assert done.status_code == 303 and done.headers["location"] == "/", done.text
    assert set_cookies(done, SESSION)


async def test_an_id_token_for_another_nonce_is_refused(
    world: World,
    new_browser,
):
    context = await new_browser()
    page = await context.new_page()
    sent: list[dict] = []

    async def other_nonce(route: Route) -> None:
        """The gateway's answer, sending the browser on with another nonce."""
        started = await route.fetch(max_redirects=0)
        parts = urlsplit(started.headers["location"])
        query = parse_qs(parts.query)
        sent.append(dict(query))
        query["nonce"] = ["not-the-gateways-" + uuid.uuid4().hex]
        location = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
        await route.fulfill(response=started, headers={**started.headers, "location": location})

    await page.route(lambda url: urlsplit(url).path == "/auth/login", other_nonce)
    answers = callback_answers(context)
    await page.goto(f"{world.gateway}/auth/login?provider=alpha")
    login = await browser_cookie(context, LOGIN)
    assert login is not None and len(sent) == 1
    assert sent[0]["nonce"] == [tokens.derive(login["value"], "nonce")]
    await sign_in_at_provider(page, "mia")
    assert len(answers) == 1
    problem = await _problem(answers[0])
    assert problem["code"] == "id_token_invalid", problem
    assert await browser_cookie(context) is None and await browser_cookie(context, LOGIN) is None


ELSEWHERE = ("https://evil.example/", "//evil.example", "/\\evil.example", "http:/evil.example",
             "javascript:alert(1)", "evil.example")  # fmt: skip


@pytest.mark.parametrize("return_to", ELSEWHERE)
async def test_return_to_elsewhere_is_refused(world: World, return_to: str):
    async with httpx.AsyncClient(base_url=world.gateway, timeout=10) as client:
        for path in ("/auth/login", "/auth/sign-in"):
            r = await client.get(path, params={"provider": "alpha", "return_to": return_to})
            assert r.status_code == 422, (path, r.text)
            assert r.json()["code"] == "invalid_return_to"
            assert "location" not in r.headers and "set-cookie" not in r.headers


async def test_return_to_elsewhere_in_the_browser_stays_here(
    world: World,
    new_browser,
):
    page = await (await new_browser()).new_page()
    url = f"{world.gateway}/auth/login?{urlencode({'return_to': '//evil.example/x'})}"
    response = await page.goto(url)
    assert response is not None and response.status == 422
    assert page.url == url and await browser_cookie(page.context, LOGIN) is None


# ------------------------------------------------------------------- 6. one user per identity


async def test_two_providers_asserting_one_verified_email_are_two_users(
    world: World,
    new_browser,
):
    mine = []
    for provider in ("alpha", "beta"):
        page = await (await new_browser()).new_page()
        await sign_in(page, world.gateway, "alice", provider=provider)
        me = await fetch(page, "/api/v1/me")
        assert me.status == 200, me.body
        assert me.body["user"]["email"] == "alice@example.com"
        assert me.body["user"]["email_verified"] is True
        assert me.body["session"]["provider"] == provider
        mine.append(me.body["user"]["id"])
    assert mine[0] != mine[1]
    async with connected(world.dsn) as conn:
        rows = await conn.fetch(
            "SELECT issuer, user_id::text AS user_id FROM user_identities"
            " WHERE subject = 'alice' AND issuer = ANY($1::text[]) ORDER BY user_id",
            [world.alpha.issuer, world.beta.issuer],
        )
    assert {(r["issuer"], r["user_id"]) for r in rows} == {
        (world.alpha.issuer, mine[0]), (world.beta.issuer, mine[1]),
    }  # fmt: skip


# ---------------------------------------------------------------------------------- 7. CSRF


@dataclass
class Elsewhere:
    """A page on another origin: ``cross_site`` (http://localhost:P, another site than
    127.0.0.1) and ``same_site`` (http://127.0.0.1:P, the gateway's site, another origin)."""

    port: int

    @property
    def cross_site(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def same_site(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
async def elsewhere() -> AsyncIterator[Elsewhere]:
    async def page(_request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><title>elsewhere</title><p>hello</p>",
                            content_type="text/html")  # fmt: skip

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield Elsewhere(runner.addresses[0][1])
    finally:
        await runner.cleanup()


_FORM = """([action, enctype, fields]) => {
    const form = document.createElement('form');
    form.method = 'post'; form.action = action; form.enctype = enctype;
    for (const [name, value] of fields) {
        const input = document.createElement('input');
        input.type = 'hidden'; input.name = name; input.value = value;
        form.appendChild(input);
    }
    document.body.appendChild(form);
    form.submit();
}"""


async def test_requests_from_other_sites_change_nothing_and_this_site_with_the_token_does(
    world: World,
    elsewhere: Elsewhere,
    new_browser,
):
    gw = world.gateway
    tenant = await make_tenant(world.dsn)
    await known_person(world.dsn, world.alpha.issuer, "judy", {tenant.tenant_id: "admin"})
    context = await new_browser()
    home = await context.new_page()
    await sign_in(home, gw, "judy")
    secret = await session_value(context)
    me = await fetch(home, "/api/v1/me")
    assert me.body["tenant"]["slug"] == tenant.slug and me.body["role"] == "admin"
    name = me.body["tenant"]["name"]

    page = await context.new_page()
    answered: list[tuple[str, str, int]] = []
    page.on("response", lambda r: answered.append((r.request.method, r.url, r.status))
            if r.url.startswith(gw) else None)  # fmt: skip
    json_body = json.dumps({"name": "evil", "role": "admin"})
    for origin in (elsewhere.cross_site, elsewhere.same_site):
        await page.goto(origin + "/")
        # a script's PATCH needs a preflight, which the gateway does not allow: never sent
        blocked = await fetch(page, gw + "/api/v1/tenant", method="PATCH",
                              body={"name": "Owned"}, credentials="include")  # fmt: skip
        assert blocked.status == 0 and "TypeError" in blocked.body
        # a "simple" POST goes without asking; the gateway refuses it (same-site: the cookie
        # went along, 403; cross-site: SameSite=Lax kept it home, nobody is signed in, 401)
        refused = 403 if origin == elsewhere.same_site else 401
        async with page.expect_response(lambda r: r.url == gw + "/api/v1/api-keys") as info:
            await page.evaluate(
                """([url, body]) => fetch(url, {method: 'POST', mode: 'no-cors',
                    credentials: 'include', headers: {'content-type': 'text/plain'}, body})""",
                [gw + "/api/v1/api-keys", json_body],
            )
        assert (await info.value).status == refused
        # a form posted to the API (JSON in text/plain), and one that signs out
        async with page.expect_navigation():
            await page.evaluate(_FORM, [gw + "/api/v1/api-keys", "text/plain",
                                        [[json_body[:-1] + ', "x": "', '"}']]])  # fmt: skip
        assert answered[-1] == ("POST", gw + "/api/v1/api-keys", refused)
        await page.goto(origin + "/")
        async with page.expect_navigation():
            await page.evaluate(_FORM, [gw + "/auth/logout", "application/x-www-form-urlencoded",
                                        [["csrf_token", "guessed"]]])  # fmt: skip
        if origin == elsewhere.same_site:
            assert answered[-1] == ("POST", gw + "/auth/logout", 403)
            assert "csrf_refused" in await page.locator("body").inner_text()
        # still signed in, in the browser too (a logout without the cookie clears nothing)
        assert await session_value(context) == secret
        assert (await replay(gw, secret)).status_code == 200

    assert ("PATCH", gw + "/api/v1/tenant") not in {a[:2] for a in answered}  # preflight only
    async with httpx.AsyncClient(base_url=gw, headers=tenant.headers, timeout=10) as api:
        keys = (await api.get("/api/v1/api-keys")).json()["items"]
        assert [k["id"] for k in keys] == [str(tenant.key_id)]
        assert (await api.get("/api/v1/tenant")).json()["name"] == name

        # the token is not enough on its own: the request must also say it comes from here
        # (as a sibling origin's script with a leaked token would not)
        token_only = {
            "another origin of the site": {"sec-fetch-site": "same-site",
                                           "origin": elsewhere.same_site},
            "a foreign Origin": {"origin": elsewhere.cross_site},
            "no word of where from": {"sec-fetch-site": None, "origin": None},
        }  # fmt: skip
        for case, override in token_only.items():
            headers = {**same_site_headers(gw, secret), **override}
            sent = {k: v for k, v in headers.items() if v is not None}
            async with httpx.AsyncClient(base_url=gw, timeout=10) as browserish:
                r = await browserish.patch("/api/v1/tenant", json={"name": "Nope"}, headers=sent)
            assert r.status_code == 403 and r.json()["code"] == "csrf_refused", case

        # from the gateway's own page: without the token refused, with it allowed
        missing = await fetch(home, "/api/v1/tenant", method="PATCH", body={"name": "Nope"})
        assert missing.status == 403 and missing.body["code"] == "csrf_refused"
        wrong = await fetch(home, "/api/v1/tenant", method="PATCH", body={"name": "Nope"},
                            csrf=tokens.derive(secret, "state"))  # fmt: skip
        assert wrong.status == 403 and wrong.body["code"] == "csrf_refused"
        done = await fetch(home, "/api/v1/tenant", method="PATCH", body={"name": "Judy's"},
                           csrf=me.body["csrf_token"])  # fmt: skip
        assert done.status == 200, done.body
        assert (await api.get("/api/v1/tenant")).json()["name"] == "Judy's"

        # an API key needs neither Origin nor token, and a cookie beside it changes nothing
        r = await api.patch("/api/v1/tenant", json={"name": "By key"})
        assert r.status_code == 200, r.text
        r = await api.patch("/api/v1/tenant", json={"size": 7}, headers={
            "origin": elsewhere.cross_site, "sec-fetch-site": "cross-site",
            "cookie": f"{SESSION}={secret}",
        })  # fmt: skip
        assert r.status_code == 200 and r.json()["size"] == 7, r.text


# ---------------------------------------------------------------------------------- 8. headers


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda _m: str(uuid.uuid4()), path)


def _check_headers(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url.path} {response.status_code}"
    headers = response.headers
    policy = headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in policy, where
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, where
    assert "default-src 'self'" in policy and "object-src 'none'" in policy, where
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("referrer-policy") == "same-origin", where
    assert headers.get("x-frame-options") == "DENY", where
    assert "strict-transport-security" not in headers, where  # plain http: no HSTS


async def test_every_route_answers_with_the_security_headers(world: World):
    gw = world.gateway
    tenant = await make_tenant(world.dsn)
    await known_person(world.dsn, world.alpha.issuer, "noah", {tenant.tenant_id: "admin"})
    async with connected(world.dsn) as conn:
        user = await conn.fetchval(
            "SELECT user_id FROM user_identities WHERE issuer = $1 AND subject = 'noah'",
            world.alpha.issuer,
        )
        issued = await sessions.start(
            conn, user_id=user, tenant_id=tenant.tenant_id, role="admin", provider="alpha",
            issuer=world.alpha.issuer, timeouts=sessions.Timeouts(600, 3600),
        )  # fmt: skip
    credentials = {
        "none": {},
        "api key": tenant.headers,
        "session": {"cookie": f"{SESSION}={issued.secret}"},
    }
    async with httpx.AsyncClient(base_url=gw, timeout=20) as client:
        document = await client.get("/openapi.json", headers=tenant.headers)
        assert document.status_code == 200
        paths = {_fill(p) for p in document.json()["paths"]}
        paths |= {"/", "/docs", "/openapi.json", "/healthz", "/readyz", "/metrics",
                  "/auth/sign-in", "/auth/login", "/auth/callback", "/auth/logout",
                  "/auth/signed-out", "/auth/dev-login", "/no/such/path",
                  "/api/v1/integrations/no/such/path"}  # fmt: skip
        assert len(paths) > 40 and any(p.startswith("/api/v1/marketplace") for p in paths)
        statuses: set[int] = set()
        for path in sorted(paths):
            for headers in credentials.values():
                response = await client.get(path, headers=headers)
                _check_headers(response)
                statuses.add(response.status_code // 100)
            # and what a browser's unsafe request without the token gets
            response = await client.post(path, headers={**credentials["session"],
                                                        "sec-fetch-site": "cross-site"})  # fmt: skip
            _check_headers(response)
            statuses.add(response.status_code // 100)
        assert {2, 3, 4} <= statuses

        # /docs has a policy of its own: Swagger UI from its CDN, its one inline script by hash
        docs = await client.get("/docs")
        policy = docs.headers["content-security-policy"]
        script_src = next(d for d in policy.split("; ") if d.startswith("script-src "))
        inline = re.findall(r"<script>(.*?)</script>", docs.text, flags=re.S)
        assert inline
        for script in inline:
            digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in script_src.split()
        assert "https://cdn.jsdelivr.net" in script_src
        assert policy != (await client.get("/auth/sign-in")).headers["content-security-policy"]
        # a sign-in page may post only here and to the providers' logout pages
        form_action = next(
            d
            for d in (await client.get("/")).headers["content-security-policy"].split("; ")
            if d.startswith("form-action ")
        )
        assert set(form_action.split()[1:]) == {
            "'self'", world.alpha.issuer, world.beta.issuer,
        }  # fmt: skip


# ---------------------------------------------------------------------------------- 9. WebSocket


_OPEN_WS = """(url) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    window.__ws = {opened: false, closed: false, code: null, messages: 0};
    ws.onopen = () => { window.__ws.opened = true; };
    ws.onmessage = () => { window.__ws.messages += 1; resolve(true); };
    ws.onclose = (event) => {
        window.__ws.closed = true; window.__ws.code = event.code; resolve(false);
    };
})"""


async def test_ending_a_session_closes_its_websockets_and_other_origins_are_refused(
    world: World,
    elsewhere: Elsewhere,
    new_browser,
):
    gw = world.gateway
    tenant = await make_tenant(world.dsn)
    user = await known_person(world.dsn, world.alpha.issuer, "olga", {tenant.tenant_id: "editor"})
    async with connected(world.dsn) as conn:
        integration = await conn.fetchval(
            "INSERT INTO integration_connectors (tenant_id, connector_name, service_name)"
            " VALUES ($1, 'live', 'live') RETURNING id",
            tenant.tenant_id,
        )
        # the same person in another browser: a second session
        other = await sessions.start(
            conn, user_id=user, tenant_id=tenant.tenant_id, role="editor", provider="alpha",
            issuer=world.alpha.issuer, timeouts=sessions.Timeouts(600, 3600),
        )  # fmt: skip
    ws_path = f"/api/v1/integrations/{integration}/sync/ws"
    ws_url = gw.replace("http", "ws", 1) + ws_path

    context = await new_browser()
    page = await context.new_page()
    await sign_in(page, gw, "olga")
    session_id = (await fetch(page, "/api/v1/me")).body["session"]["id"]
    assert await page.evaluate(_OPEN_WS, ws_url), await page.evaluate("window.__ws")

    # a page of the same site but another origin sends the cookie along: refused all the same
    stranger = await context.new_page()
    await stranger.goto(elsewhere.same_site + "/")
    assert await stranger.evaluate(_OPEN_WS, ws_url) is False
    assert await stranger.evaluate("window.__ws.opened") is False
    async with aiohttp.ClientSession() as client:
        for origin in (elsewhere.same_site, elsewhere.cross_site, "null"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect(ws_url, headers={
                    "cookie": f"{SESSION}={other.secret}", "origin": origin})  # fmt: skip
            assert refused.value.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError):  # no Origin at all
            await client.ws_connect(ws_url, headers={"cookie": f"{SESSION}={other.secret}"})
        # from this origin the other session connects
        async with client.ws_connect(ws_url, headers={
            "cookie": f"{SESSION}={other.secret}", "origin": gw}) as ws:  # fmt: skip
            assert (await ws.receive(timeout=5)).type == aiohttp.WSMsgType.BINARY

    # the other session ends the browser's: its socket closes, 1008, within 5 s
    async with httpx.AsyncClient(base_url=gw, timeout=10) as client:
        r = await client.delete(
            f"/api/v1/me/sessions/{session_id}", headers=same_site_headers(gw, other.secret)
        )
    assert r.status_code == 200, r.text
    ended = time.monotonic()

    async def closed() -> bool:
        return await page.evaluate("window.__ws.closed")

    await until(closed, within=5, every=0.1)
    assert time.monotonic() - ended < 5
    assert await page.evaluate("window.__ws.code") == 1008
    assert (await replay(gw, other.secret)).status_code == 200  # only that one ended
    async with connected(world.dsn) as conn:
        await conn.execute("DELETE FROM integration_connectors WHERE id = $1", integration)


async def test_an_open_websocket_alone_does_not_keep_a_session_alive(world: World):
    """Its checks while open are not activity: a session that makes no requests ends when it
    is idle for long enough, and its socket closes."""
    gw = world.short.gateway
    tenant = await make_tenant(world.dsn)
    user = await known_person(world.dsn, world.alpha.issuer, "pete", {tenant.tenant_id: "viewer"})
    async with connected(world.dsn) as conn:
        integration = await conn.fetchval(
            "INSERT INTO integration_connectors (tenant_id, connector_name, service_name)"
            " VALUES ($1, 'idle', 'idle') RETURNING id",
            tenant.tenant_id,
        )
        idle = IDLE_MINUTES * 60
        session = await sessions.start(
            conn, user_id=user, tenant_id=tenant.tenant_id, role="viewer", provider="alpha",
            issuer=world.alpha.issuer, timeouts=sessions.Timeouts(idle, 600),
        )  # fmt: skip
    ws_url = gw.replace("http", "ws", 1) + f"/api/v1/integrations/{integration}/sync/ws"
    headers = {"cookie": f"{SESSION}={session.secret}", "origin": gw}
    async with aiohttp.ClientSession() as client, client.ws_connect(ws_url, headers=headers) as ws:
        opened = time.monotonic()
        while (message := await ws.receive(timeout=idle + 8)).type not in (
            aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING
        ):  # fmt: skip
            pass  # the document's first messages
        assert ws.close_code == 1008, message
        assert time.monotonic() - opened >= idle - 0.5  # not before it was idle long enough
    answer = await replay(gw, session.secret)
    assert answer.status_code == 401 and answer.json()["code"] == "session_expired"
    async with connected(world.dsn) as conn:
        await conn.execute("DELETE FROM integration_connectors WHERE id = $1", integration)


# ---------------------------------------------------------------------------------- rate limit


def _from(address: str, gateway: str) -> httpx.AsyncClient:
    """A client whose requests come from ``address`` (any 127.x address is this machine)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=gateway, transport=transport, timeout=10)


async def test_sign_ins_are_rate_limited_per_address(world: World):
    gw = world.short.gateway
    burst = max(5, SHORT_RATE // 2)
    async with _from("127.0.0.2", gw) as client:
        answers = [(await client.get("/auth/login", params={"provider": "alpha"}))
                   for _ in range(burst + 1)]  # fmt: skip
        assert [a.status_code for a in answers] == [303] * burst + [429]
        limited = answers[-1]
        assert limited.json()["code"] == "too_many_requests"
        assert 1 <= int(limited.headers["retry-after"]) <= 60 / SHORT_RATE + 1
        assert "location" not in limited.headers and "set-cookie" not in limited.headers
        # the callback counts as a sign-in attempt too
        callback = await client.get("/auth/callback", params={"state": "s", "code": "c"})
        assert callback.status_code == 429
    async with _from("127.0.0.3", gw) as client:  # another address is not held back
        assert (await client.get("/auth/login", params={"provider": "alpha"})).status_code == 303


# ------------------------------------------------------------------------------ invitations


async def _invite(world: World, email: str, role: str = "editor") -> tuple[Any, str]:
    tenant = await make_tenant(world.dsn)
    async with httpx.AsyncClient(base_url=world.gateway, headers=tenant.headers) as client:
        r = await client.post("/api/v1/invitations", json={"email": email, "role": role})
    assert r.status_code == 201, r.text
    return tenant, r.json()["link"]


async def test_an_invitation_link_signs_the_invited_person_into_the_tenant(world, new_browser):
    tenant, link = await _invite(world, "Quinn@Example.com")
    assert link.startswith(world.gateway + "/auth/invitations/")
    page = await (await new_browser()).new_page()
    await page.goto(link)  # -> /auth/login?invitation=... -> the platform's provider
    await sign_in_at_provider(page, "quinn")
    await page.wait_for_load_state()
    assert page.url == world.gateway + "/", page.url
    me = (await fetch(page, world.gateway + "/api/v1/me")).body
    assert me["tenant"]["slug"] == tenant.slug and me["role"] == "editor", me
    async with httpx.AsyncClient(base_url=world.gateway, headers=tenant.headers) as client:
        invitations = (await client.get("/api/v1/invitations")).json()["items"]
        members = (await client.get("/api/v1/members")).json()["items"]
    assert [i["status"] for i in invitations] == ["accepted"]
    assert [m["email"] for m in members] == ["quinn@example.com"]
    # used up: the same link again signs in, but joins nothing and says why
    page = await (await new_browser()).new_page()
    await page.goto(link)
    await sign_in_at_provider(page, "quinn")
    await page.wait_for_load_state()
    assert page.url == world.gateway + "/?notice=invitation_invalid", page.url
    assert "unknown, used, revoked or expired" in await page.content()


async def test_an_invitation_for_another_email_is_refused_but_the_sign_in_goes_on(
    world, new_browser
):
    tenant, link = await _invite(world, "someone-else@example.com", role="admin")
    page = await (await new_browser()).new_page()
    await page.goto(link)
    await sign_in_at_provider(page, "rosa")
    await page.wait_for_load_state()
    assert page.url == world.gateway + "/?notice=invitation_email_mismatch", page.url
    assert "another email" in await page.content()
    me = (await fetch(page, world.gateway + "/api/v1/me")).body
    assert me["tenant"] is None and me["memberships"] == [], me
    async with connected(world.dsn) as conn:
        refused = await conn.fetch(
            "SELECT payload FROM audit_logs WHERE tenant_id = $1 AND action = 'invitation.refused'",
            tenant.tenant_id,
        )
        pending = await conn.fetchval(
            "SELECT count(*) FROM invitations WHERE tenant_id = $1 AND accepted_at IS NULL",
            tenant.tenant_id,
        )
    assert [r["payload"]["reason"] for r in refused] == ["email_mismatch"]
    assert pending == 1  # still there for the person it was meant for


async def test_an_unverified_email_never_accepts_an_invitation(world, new_browser):
    """mallory's provider says her email is the invited one, but has not verified it."""
    tenant, link = await _invite(world, ACCOUNTS["mallory"]["email"])
    page = await (await new_browser()).new_page()
    await page.goto(link)
    await sign_in_at_provider(page, "mallory")
    await page.wait_for_load_state()
    assert page.url == world.gateway + "/?notice=invitation_email_mismatch", page.url
    async with connected(world.dsn) as conn:
        reasons = await conn.fetch(
            "SELECT payload->>'reason' AS reason FROM audit_logs WHERE tenant_id = $1"
            " AND action = 'invitation.refused'",
            tenant.tenant_id,
        )
    assert [r["reason"] for r in reasons] == ["email_unverified"]
