"""Bounded work before authentication on every gateway route (issue 11).

A request is refused from its headers alone when it declares a body over the limit, and a body
is never read before its sender is authenticated (except on the public paths). These tests send
a request's head and never its body: a gateway that waited for the body would never answer.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.routing import Route

from gateway.app import PUBLIC_PATHS, ROUTES, create_app
from gateway.json_depth import deeper_than
from gateway.settings import GatewaySettings
from tests.support import make_tenant

GIB = 1 << 30
LIMIT = GatewaySettings.model_fields["max_body_bytes"].default
DEPTH = 32  # SEEDOS_GATEWAY_MAX_JSON_DEPTH's default
PROBLEM = "application/problem+json"
PATIENCE = 2.0  # how long a probe waits for an answer before concluding the gateway is waiting


@dataclass
class Answer:
    status: int | None  # None: no answer within PATIENCE (the gateway waited for the body)
    seconds: float
    headers: dict[str, str]
    body: bytes
    closed: bool  # the gateway closed the connection instead of waiting for the body

    @property
    def code(self) -> str | None:
        return json.loads(self.body).get("code") if self.body else None


async def send_head(
    base: str, method: str, path: str, *headers: str, length: int | None = GIB, body: bytes = b""
) -> Answer:
    """Send a request's head declaring a ``length``-byte body (None: chunked) and then only
    ``body`` (raw, as framed); read the answer. Seconds count from the end of what was sent."""
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    head = [f"{method} {path} HTTP/1.1", f"Host: {url.netloc}", framing,
            "Content-Type: application/json", *headers]  # fmt: skip
    try:
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        writer.write(body)
        await writer.drain()
        start = time.perf_counter()
        try:
            status_line = await asyncio.wait_for(reader.readline(), PATIENCE)
        except TimeoutError:
            return Answer(None, PATIENCE, {}, b"", closed=False)
        seconds = time.perf_counter() - start
        fields: dict[str, str] = {}
        while (line := await asyncio.wait_for(reader.readline(), PATIENCE)) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            fields[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(fields.get("content-length", "0")))
        try:
            closed = await asyncio.wait_for(reader.read(1), 1.0) == b""
        except TimeoutError:
            closed = False
        status = int(status_line.split()[1]) if status_line else None
        return Answer(status, seconds, fields, body, closed)
    finally:
        writer.close()


def _routes(routes: list) -> Iterator[Route]:
    for route in routes:
        if isinstance(route, Route):
            yield route
        elif (included := getattr(route, "original_router", None)) is not None:
            yield from _routes(included.routes)  # FastAPI's included routers
        else:  # a kind of route these tests do not know how to probe
            raise AssertionError(route)


def gateway_routes() -> list[tuple[str, str]]:
    """(method, path) of every route the gateway serves, own and proxied, plus a WebSocket
    upgrade, an unknown path and the public paths."""
    app = create_app(GatewaySettings(internal_token_key="t" * 40))
    found = []
    for route in _routes(app.routes):
        path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), route.path)
        found += [(method, path) for method in sorted(route.methods or ()) if method != "HEAD"]
    assert len(found) >= 10, found
    for prefix in ROUTES:
        found += [(m, prefix) for m in ("GET", "POST")]
        found += [(m, f"{prefix}/{uuid.uuid4()}") for m in ("PUT", "PATCH", "DELETE")]
    found += [("GET", path) for path in PUBLIC_PATHS]
    found += [("POST", "/no/such/path"), ("GET", "/no/such/path")]
    return found


WS_UPGRADE = (
    "Upgrade: websocket",
    "Connection: Upgrade",
    f"Sec-WebSocket-Key: {base64.b64encode(secrets.token_bytes(16)).decode()}",
    "Sec-WebSocket-Version: 13",
)


async def test_a_declared_gibibyte_is_refused_at_once_on_every_route(suite):
    failures = []
    probes = [(m, p, ()) for m, p in gateway_routes()]
    probes.append(("GET", f"/api/v1/integrations/{uuid.uuid4()}/sync/ws", WS_UPGRADE))
    for method, path, extra in probes:
        answer = await send_head(suite.gateway, method, path, *extra)
        label = f"{method} {path}" + (" (upgrade)" if extra else "")
        if extra:  # uvicorn's WebSocket handshake refuses any body before the gateway sees it
            refused = answer.status == 400 or answer.code == "payload_too_large"
        else:
            refused = (
                answer.status == 413
                and answer.headers.get("content-type") == PROBLEM
                and answer.code == "payload_too_large"
            )
        if not (refused and answer.closed and answer.seconds < 0.1):
            failures.append((label, answer))
    assert not failures, failures


AUTHENTICATED_FIRST = [
    ("POST", "/api/v1/api-keys"),
    ("PATCH", "/api/v1/tenant"),
    ("DELETE", f"/api/v1/api-keys/{uuid.uuid4()}"),
    ("POST", "/api/v1/me"),
    ("POST", "/no/such/path"),
    ("POST", "/api/v1/integrations"),
    ("PUT", "/api/v1/marketplace/connectors/x"),
]


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED_FIRST)
@pytest.mark.parametrize("credential", ["none", "unknown"])
@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_a_body_is_not_read_before_its_sender_is_authenticated(
    suite, method, path, credential, framing
):
    """A body within the limit, declared and never sent: the answer is 401 all the same."""
    auth = () if credential == "none" else ("Authorization: Bearer sk_seedos_" + "x" * 43,)
    length = LIMIT if framing == "length" else None
    answer = await send_head(suite.gateway, method, path, *auth, length=length)
    assert answer.status == 401, answer
    assert answer.headers["content-type"] == PROBLEM
    assert answer.code == ("unauthorized" if credential == "none" else "invalid_credentials")
    assert answer.closed, "the unread body must not be waited for"
    assert answer.seconds < 0.5, answer


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def _key_names(client: httpx.AsyncClient) -> set[str]:
    r = await client.get("/api/v1/api-keys", params={"include_revoked": True})
    assert r.status_code == 200, r.text
    return {k["name"] for k in r.json()["items"]}


async def test_a_chunked_body_growing_past_the_limit_is_refused_and_changes_nothing(suite, dsn):
    t = await make_tenant(dsn)
    # a valid new key, were it read to its end (the last chunk is never sent)
    start = b'{"name": "chunked", "role": "viewer"'
    body = _chunk(start) + _chunk(b" " * (LIMIT + 1 - len(start) - 1)) + _chunk(b"}")
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        before = await _key_names(client)
        for path in ("/api/v1/api-keys", "/api/v1/integrations"):
            answer = await send_head(
                suite.gateway, "POST", path, f"Authorization: Bearer {t.key}", length=None,
                body=body,
            )  # fmt: skip
            assert answer.status == 413, (path, answer)
            assert answer.headers["content-type"] == PROBLEM
            assert answer.code == "payload_too_large" and answer.closed
        assert await _key_names(client) == before


async def test_public_paths_take_no_more_body_than_they_may(suite):
    """The OAuth callback reads no body: one, declared or chunked, is refused before anything is
    forwarded without a credential (its limit in PUBLIC_PATHS is 0)."""
    for path, most in PUBLIC_PATHS.items():
        declared = await send_head(suite.gateway, "GET", path, length=most + 1,
                                   body=b"x" * (most + 1))  # fmt: skip
        chunked = await send_head(suite.gateway, "GET", path, length=None,
                                  body=_chunk(b"x" * (most + 1)) + b"0\r\n\r\n")  # fmt: skip
        for answer in (declared, chunked):
            assert answer.status == 413 and answer.code == "payload_too_large", (path, answer)
            assert answer.headers["content-type"] == PROBLEM


async def test_a_body_at_the_limit_still_works(suite, dsn):
    t = await make_tenant(dsn)
    name = f"at-limit-{secrets.token_hex(3)}"
    body = json.dumps({"name": name, "role": "viewer"}).encode()
    over = await send_head(
        suite.gateway, "POST", "/api/v1/api-keys", f"Authorization: Bearer {t.key}",
        length=LIMIT + 1,
    )  # fmt: skip
    assert over.status == 413 and over.code == "payload_too_large"
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers, timeout=30) as client:
        headers = {"Content-Type": "application/json"}
        r = await client.post("/api/v1/api-keys", content=body.ljust(LIMIT), headers=headers)
        assert r.status_code == 201, r.text
        assert r.json()["name"] == name and r.json()["role"] == "viewer"
        assert "connection" not in r.headers  # a body read to its end keeps the connection
        r = await client.post("/api/v1/integrations", json={"connector": None})
        assert r.status_code == 422 and "connection" not in r.headers, r.headers
        assert name in await _key_names(client)
        # and chunked, without a Content-Length
        pieces = _pieces(body.ljust(LIMIT))
        r = await client.post("/api/v1/api-keys", content=pieces, headers=headers)
        assert r.status_code == 201, r.text


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 65536):
        yield data[i : i + 65536]


def _nested(depth: int) -> object:
    value: object = 1
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


async def test_json_nested_deeper_than_the_limit_is_refused_before_parsing(suite, dsn):
    t = await make_tenant(dsn)
    async with httpx.AsyncClient(base_url=suite.gateway, headers=t.headers) as client:
        profile = (await client.get("/api/v1/tenant")).json()
        # the body itself is one level: the field's value makes up the rest
        deep = {"name": "Too deep", "size": _nested(DEPTH)}
        r = await client.patch("/api/v1/tenant", json=deep)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == PROBLEM and r.json()["code"] == "json_too_deep"
        # brackets inside strings are text, not nesting
        r = await client.post("/api/v1/api-keys", json={"name": "[" * 99, "role": "nope"})
        assert r.status_code == 422 and r.json()["code"] == "validation_failed", r.text
        # at the limit the route reads and validates the body as usual
        r = await client.patch("/api/v1/tenant", json={"name": "Deep", "size": _nested(DEPTH - 1)})
        assert r.status_code == 422 and r.json()["code"] == "validation_failed", r.text
        # a million levels is refused as quickly, and refused requests changed nothing
        r = await client.patch("/api/v1/tenant", content=b"[" * 1_000_000 + b"]" * 1_000_000)
        assert r.status_code == 422 and r.json()["code"] == "json_too_deep", r.text
        assert (await client.get("/api/v1/tenant")).json() == profile
        r = await client.patch("/api/v1/tenant", json={"size": 7})
        assert r.status_code == 200 and r.json()["size"] == 7


async def test_refusals_are_counted_and_logged_with_a_request_id(suite):
    answer = await send_head(suite.gateway, "POST", "/api/v1/api-keys", "X-Request-ID: big-1")
    assert answer.status == 413 and answer.headers["x-request-id"] == "big-1"
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        metrics = (await client.get("/metrics")).text
    assert re.search(r'seedos_http_requests_total\{[^}]*method="POST"[^}]*status="413"', metrics)


def test_the_depth_limit_is_a_setting():
    assert GatewaySettings.model_fields["max_json_depth"].default == DEPTH
    with pytest.raises(ValueError):
        GatewaySettings(internal_token_key="t" * 40, max_json_depth=0)


@pytest.mark.parametrize(
    ("document", "depth"),
    [
        (b"1", 0),
        (b"[]", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'["[[[[", "]]", "{{{"]', 1),  # brackets in text are text
        (rb'["\"[[[[", "\\", [["\\\""]]]', 3),  # escaped quotes and backslashes
        (b"[[[]], [[[]]], []]", 4),
        (b"[[[[[[", 6),  # unclosed: what a parser would reach before failing
        (b'["unterminated [[[[[[', 1),
    ],
)
def test_nesting_depth_is_read_from_the_bytes(document, depth):
    assert not deeper_than(document, depth)
    assert depth == 0 or deeper_than(document, depth - 1)


async def test_clients_that_read_after_sending_see_the_refusal(suite, dsn):
    """httpx sends the whole body before it reads: a small body without a valid key, and an
    authenticated body over the limit (declared or chunked), are thrown away after the answer,
    which arrives whole on a connection that stays usable."""
    t = await make_tenant(dsn)
    wrong = {"Authorization": "Bearer sk_seedos_" + "x" * 43}
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        for _ in range(3):  # on the same connection each time
            r = await client.post("/api/v1/api-keys", json={"name": "x" * 10_000}, headers=wrong)
            assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
        r = await client.post("/api/v1/api-keys", content=b"x" * (LIMIT + 1), headers=t.headers)
        assert r.status_code == 413 and r.json()["code"] == "payload_too_large"

        async def chunks():
            for _ in range(11):
                yield b" " * (1 << 20)

        for path in ("/api/v1/api-keys", "/api/v1/integrations"):
            r = await client.post(path, content=chunks(), headers=t.headers)
            assert r.status_code == 413 and r.json()["code"] == "payload_too_large", path
        assert (await client.get("/api/v1/me", headers=t.headers)).status_code == 200
