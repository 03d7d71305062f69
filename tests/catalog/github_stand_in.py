"""GitHub's stand-in for test_github.py: Prism serving GitHub's own OpenAPI description
(@octokit/openapi, npm packages of tests/prism), GitHub's pagination in front of it, the
description's schemas as JSON Schema, and the generic connector under the SDK's socket guard.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import jsonschema
import pytest

from seedos_sdk.declarative.server import app_factory
from seedos_sdk.testing import free_port
from seedos_sdk.testing.network import outside_connects

ROOT = Path(__file__).resolve().parents[2]
PRISM_DIR = Path(__file__).with_name("prism")
PRISM_CLI = PRISM_DIR / "node_modules" / "@stoplight" / "prism-cli" / "dist" / "index.js"
DESCRIPTION = (
    PRISM_DIR / "node_modules" / "@octokit" / "openapi" / "generated" / "api.github.com.json"
)
REPO = "/repos/octocat/Hello-World"  # Prism answers any owner and repository
LAST_PAGE = 3
ANSI = re.compile(r"\x1b\[[0-9;]*m")


# ------------------------------------------------------------ the generic connector, guarded


def guarded_app() -> Any:
    """The generic connector (``app_factory``) under the socket guard of
    :mod:`seedos_sdk.testing.network` for the life of its process: any connect or name lookup
    off loopback is refused and kept, and ``GET /_guard`` answers them. Started by uvicorn on
    the plain asyncio loop (``UVICORN_LOOP=asyncio``), whose connects and lookups go through the
    ``socket`` functions the guard replaces (uvloop's would not)."""
    attempts = outside_connects(pytest.MonkeyPatch()).__enter__()
    app = app_factory()

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/_guard":
            loop = type(asyncio.get_running_loop())
            body = json.dumps({"attempts": [repr(a) for a in attempts],
                               "loop": f"{loop.__module__}.{loop.__name__}"})  # fmt: skip
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": body.encode()})
            return
        await app(scope, receive, send)

    return guarded


class Guard:
    def __init__(self, url: str) -> None:
        self.url = url

    def state(self) -> dict[str, Any]:
        return httpx.get(self.url + "/_guard", timeout=10).json()

    def attempts(self) -> list[str]:
        return self.state()["attempts"]


# ------------------------------------------------------------------------------------- Prism


class Prism:
    """``prism mock --errors`` on a free loopback port, its log kept in a file."""

    def __init__(self, log_path: Path) -> None:
        node = shutil.which("node")
        if node is None or not PRISM_CLI.is_file() or not DESCRIPTION.is_file():
            pytest.fail(f"needs node and `npm ci --prefix {PRISM_DIR}` (make test does it)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [node, str(PRISM_CLI), "mock", "--errors", "--host", "127.0.0.1",
                 "--port", str(self.port), str(DESCRIPTION)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                answer = httpx.get(
                    f"{self.url}{REPO}/issues", headers={"Accept": "application/json"}
                )
                if answer.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)  # polling Prism's port while it loads the description
        self.stop()
        pytest.fail(f"Prism did not answer within {timeout:g} s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def log(self, start: int = 0) -> str:
        with self.log_path.open("rb") as file:
            file.seek(start)
            return ANSI.sub("", file.read().decode(errors="replace"))

    def mark(self) -> int:
        return self.log_path.stat().st_size

    def settled_log(self, start: int, *, requests: int) -> str:
        """The log from ``start`` once it holds the answers to ``requests`` requests (Prism
        writes its log after answering)."""
        deadline = time.monotonic() + 10
        while True:
            text = self.log(start)
            answered = "Responding with the requested status code", "Request terminated with error"
            if sum(text.count(line) for line in answered) >= requests:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"Prism logged fewer than {requests} answers:\n{text}")
            time.sleep(0.05)  # polling the log file Prism appends to

    @staticmethod
    def violations(text: str) -> list[str]:
        """What Prism's validator refused (request and response violations), spaces squeezed."""
        return [" ".join(line[line.index("[VALIDATOR]") :].split()) for line in text.splitlines()
                if "[VALIDATOR]" in line and "✔" not in line]  # fmt: skip


# ------------------------------------------------------- GitHub's pagination in front of Prism


class Pages(ThreadingHTTPServer):
    """A loopback proxy to Prism that pages as GitHub does: a ``GET`` answered with a ``Link``
    gets GitHub's header for the URL asked (``page=n+1`` until :data:`LAST_PAGE`, with
    ``last``, ``prev`` and ``first``), naming https://api.github.com as GitHub does. Everything
    else is Prism's answer; ``Prefer: dynamic=true`` makes each one freshly generated from the
    description. Keeps each request: method, path, query, body."""

    daemon_threads = True

    def __init__(self, prism: Prism) -> None:
        self.prism = prism
        self.requests: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", 0), _PageHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.shutdown()
        self._thread.join()
        self.server_close()


def github_link(path: str, query: list[tuple[str, str]], page: int) -> str:
    """GitHub's ``Link`` for page ``page`` of ``path?query`` (empty on a lone page). GitHub's
    own links name ``/repositories/{id}/issues``, a path the description does not have: these
    keep the path asked."""

    def at(n: int) -> str:
        kept = [(k, v) for k, v in query if k != "page"] + [("page", str(n))]
        return f"<https://api.github.com{path}?{urlencode(kept)}>"

    links = []
    if page < LAST_PAGE:
        links += [f'{at(page + 1)}; rel="next"', f'{at(LAST_PAGE)}; rel="last"']
    if page > 1:
        links += [f'{at(page - 1)}; rel="prev"', f'{at(1)}; rel="first"']
    return ", ".join(links)


class _PageHandler(BaseHTTPRequestHandler):
    server: Pages
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qsl(parts.query, keep_blank_values=True)
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        self.server.requests.append({"method": self.command, "path": parts.path,
                                     "query": dict(query), "body": body})  # fmt: skip
        dropped = ("host", "connection", "content-length", "prefer")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in dropped}
        headers["Prefer"] = "dynamic=true"
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.prism.port, timeout=30)
        try:
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            content = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("connection", "keep-alive", "content-length", "link",
                                    "transfer-encoding", "date"):  # fmt: skip
                self.send_header(name, value)
        if answer.getheader("link") is not None and self.command == "GET":
            page = int(dict(query).get("page", "1"))
            if link := github_link(parts.path, query, page):
                self.send_header("Link", link)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_PATCH = _forward

    def log_message(self, *args: object) -> None:
        pass


# ----------------------------------------------------------------- the description's schemas


@cache
def description() -> dict[str, Any]:
    return json.loads(DESCRIPTION.read_bytes())


_SUBSCHEMA = ("items", "not", "additionalProperties")
_SUBSCHEMAS = ("allOf", "anyOf", "oneOf")


def as_json_schema(node: Any) -> Any:
    """An OpenAPI 3.0 Schema Object as JSON Schema (draft 4, whose boolean
    ``exclusiveMaximum`` OpenAPI 3.0 shares): ``nullable: true`` also allows null."""
    if not isinstance(node, dict):
        return node
    out = {k: v for k, v in node.items() if k != "nullable"}
    for key in _SUBSCHEMA:
        if isinstance(out.get(key), dict):
            out[key] = as_json_schema(out[key])
    for key in _SUBSCHEMAS:
        if key in out:
            out[key] = [as_json_schema(s) for s in out[key]]
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: as_json_schema(s) for k, s in out["properties"].items()}
    return {"anyOf": [out, {"type": "null"}]} if node.get("nullable") is True else out


@cache
def components() -> dict[str, Any]:
    schemas = description()["components"]["schemas"]
    return {"schemas": {name: as_json_schema(s) for name, s in schemas.items()}}


def validator(path: str, method: str, status: str | None = None) -> jsonschema.Draft4Validator:
    """The description's schema of ``status``'s answer (or, without it, of the request's body)
    of one operation, with every component it refers to."""
    operation = description()["paths"][path][method]
    part = operation["responses"][status] if status else operation["requestBody"]
    schema = as_json_schema(part["content"]["application/json"]["schema"])
    return jsonschema.Draft4Validator({"allOf": [schema], "components": components()})


def problems(check: jsonschema.Draft4Validator, value: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
            for e in check.iter_errors(value)][:5]  # fmt: skip
