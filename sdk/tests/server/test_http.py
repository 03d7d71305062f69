"""HttpClient's policy against a stand-in external API (httpx.MockTransport)."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from seedos_sdk import AuthError, HttpClient, PermanentError, RetryableError
from seedos_sdk.http import parse_retry_after


def client(handler, **kw) -> HttpClient:
    kw.setdefault("backoff_initial", 0.01)
    kw.setdefault("backoff_max", 0.05)
    return HttpClient(base_url="https://api.example", transport=httpx.MockTransport(handler), **kw)


def counting(*responses: httpx.Response):
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return responses[min(len(calls), len(responses)) - 1]

    return handler, calls


async def test_post_is_not_retried_unless_asked():
    handler, calls = counting(
        httpx.Response(503), httpx.Response(503), httpx.Response(201, json={})
    )
    async with client(handler) as http:
        with pytest.raises(RetryableError):
            await http.post("/things", json={})
        assert len(calls) == 1
        r = await http.post("/things", json={}, retry=True)  # e.g. with an idempotency key
    assert r.status_code == 201 and len(calls) == 3


async def test_4xx_are_permanent_and_auth_is_separate():
    for status, kind in ((400, PermanentError), (404, PermanentError), (401, AuthError)):
        handler, calls = counting(httpx.Response(status, text="nope"))
        async with client(handler) as http:
            with pytest.raises(kind) as info:
                await http.get("/x")
        assert len(calls) == 1 and info.value.upstream_status == status


async def test_retry_after_longer_than_allowed_is_raised_at_once():
    handler, calls = counting(httpx.Response(429, headers={"Retry-After": "120"}))
    async with client(handler, max_retry_after=5) as http:
        with pytest.raises(RetryableError) as info:
            await http.get("/x")
    assert len(calls) == 1 and info.value.retry_after == 120


def test_retry_after_as_seconds_or_http_date():
    now = time.time()
    assert parse_retry_after("7") == 7
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= parse_retry_after(date, now=now) <= 31
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after("9" * 400) is None  # float() makes it inf


async def test_redirects_are_not_followed():
    """Following one would send the API key (a custom header) to another origin."""
    handler, calls = counting(httpx.Response(302, headers={"Location": "https://evil.example/"}))
    async with client(handler, headers={"X-API-Key": "secret"}) as http:
        r = await http.get("/x")
    assert r.status_code == 302 and len(calls) == 1


async def test_error_bodies_are_scrubbed():
    handler, _ = counting(httpx.Response(400, text="bad token: Bearer abc.def.ghi"))
    async with client(handler) as http:
        with pytest.raises(PermanentError) as info:
            await http.get("/x")
    assert "abc.def" not in info.value.message


async def test_client_pool_reuses_per_install_and_drops_idle_ones():
    from seedos_sdk.server import ClientPool

    made: list[HttpClient] = []

    def make() -> HttpClient:
        made.append(HttpClient(base_url="https://api.example"))
        return made[-1]

    pool = ClientPool(size=2, idle_seconds=3600, grace_seconds=0)
    a = pool.get({"u": 1}, {"k": "a"}, make)
    assert pool.get({"u": 1}, {"k": "a"}, make) is a and len(made) == 1
    b = pool.get({"u": 1}, {"k": "b"}, make)  # other credentials: another client
    assert b is not a
    pool.get({"u": 2}, {"k": "c"}, make)  # a third pushes out the least recently used (a)
    assert pool.get({"u": 1}, {"k": "a"}, make) is not a
    pool.idle_seconds = 0  # everything idle: dropped at the next call, except the one asked for
    pool.get({"u": 9}, {}, make)
    assert len(pool._clients) == 1
    await pool.aclose()
