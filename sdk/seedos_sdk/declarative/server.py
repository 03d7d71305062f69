"""The generic connector: one contract server that runs any connector definition.

Each definition is served under a path that names its exact version and content::

    /definitions/{name}/{version}/{digest}/manifest, /check, /streams/{s}/read, ...

(``digest``: the SHA-256 of the definition's text), so an install that calls that URL keeps
calling the definition it was installed with, whatever is published later. Definitions come
from a folder of ``*.yaml`` files (``SEEDOS_DEFINITIONS``) and from the catalog
(``SEEDOS_DEFINITIONS_SOURCE``: marketplace_service's URL, where ``GET /definitions/{digest}``
answers a published definition's text): one the folder does not hold is fetched by its digest,
and used only if its text has that digest and names that name and version. A path naming a
definition neither has is 404. ``GET /definitions`` lists the folder's. Each definition is
compiled once, on first use.

Every definition calls its API under the egress rule, read once at start from
``SEEDOS_EGRESS_ALLOWED_NETWORKS`` (default ``0.0.0.0/0,::/0``: public addresses only; an API on
this machine, such as the demo CRM, needs ``127.0.0.0/8`` listed): see :mod:`seedos_sdk.egress`.
The catalog itself (``SEEDOS_DEFINITIONS_SOURCE``) is the suite's, not an external API.

Run: ``SEEDOS_DEFINITIONS=path/to/definitions uvicorn --factory
seedos_sdk.declarative.server:app_factory``.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from seedos_sdk.declarative.definition import Definition, DefinitionError, digest_of, load
from seedos_sdk.declarative.engine import build
from seedos_sdk.egress import AddressPolicy, egress_policy
from seedos_sdk.server import create_app

log = structlog.get_logger(component="seedos_sdk.declarative")
PREFIX = "/definitions/"
DIGEST = re.compile(r"^[0-9a-f]{64}$")
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
VERSION = re.compile(r"^[0-9A-Za-z.+-]{1,64}$")
MAX_TEXTS = 256
PROBLEM = "application/problem+json"


@dataclass
class Served:
    definition: Definition
    app: Starlette


class Library:
    """The definitions of a folder, by (name, version, digest), compiled on first use, each
    calling its API under ``egress`` (default: public addresses only)."""

    def __init__(
        self, folder: Path | None, source: str | None = None, *,
        egress: AddressPolicy | None = None,
    ) -> None:  # fmt: skip
        self.folder = folder
        self.egress = egress or egress_policy({})
        self.source = source.rstrip("/") if source else None
        self._files: dict[tuple[str, str, str], Path] = {}
        self._served: dict[tuple[str, str, str], Served] = {}
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}
        self._texts: dict[str, bytes] = {}  # fetched, by digest (the last MAX_TEXTS)
        self.problems: dict[str, list[str]] = {}
        self.scan()

    def scan(self) -> None:
        """Index the folder's definitions (their names and versions read, not yet compiled);
        one that does not load is logged with its problems and left out."""
        self._files.clear()
        self.problems.clear()
        if self.folder is None:
            return
        for path in sorted(self.folder.glob("*.y*ml")):
            try:
                definition = load(path.read_bytes())
            except DefinitionError as exc:
                self.problems[path.name] = exc.problems
                log.warning("definition_refused", file=path.name, problems=exc.problems)
                continue
            except Exception as exc:  # unreadable, say: the others are served all the same
                self.problems[path.name] = [f"(file): {type(exc).__name__}: {exc}"]
                log.warning("definition_unreadable", file=path.name, error=type(exc).__name__)
                continue
            self._files[(definition.name, definition.version, definition.digest)] = path

    def listing(self) -> list[dict[str, Any]]:
        return [{"name": n, "version": v, "digest": d, "path": f"{PREFIX}{n}/{v}/{d}"}
                for (n, v, d) in sorted(self._files)]  # fmt: skip

    async def get(self, name: str, version: str, digest: str) -> Served | None:
        """The definition of that name, version and digest, from the folder or, when it is not
        there, fetched from the catalog by its digest; None when neither has it."""
        key = (name, version, digest)
        served = self._served.get(key)
        if served is not None:
            return served
        if not (NAME.match(name) and VERSION.match(version) and DIGEST.match(digest)):
            return None  # nothing such could be served: no lock, no fetch
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            return await self._load(key, lock)
        finally:
            if not lock.locked():
                self._locks.pop(key, None)

    async def _load(self, key: tuple[str, str, str], lock: asyncio.Lock) -> Served | None:
        name, version, digest = key
        async with lock:  # one fetch for many requests
            served = self._served.get(key)
            if served is not None:
                return served
            text = await self._text(key)
            if text is None:
                return None
            started = time.perf_counter()
            try:
                definition = load(text)
            except DefinitionError as exc:
                log.warning("definition_refused", name=name, version=version,
                            digest=digest[:12], problems=exc.problems)  # fmt: skip
                return None
            if (definition.name, definition.version) != (name, version):
                log.warning("definition_mismatch", name=name, version=version, digest=digest[:12])
                return None
            served = Served(definition, create_app(build(definition, egress=self.egress)))
            self._served[key] = served
        log.info("definition_loaded", name=name, version=version, digest=digest[:12],
                 ms=round((time.perf_counter() - started) * 1000, 2))  # fmt: skip
        return served

    async def _text(self, key: tuple[str, str, str]) -> bytes | None:
        """The definition's text, whose SHA-256 is the digest asked for: from the folder, or
        from the catalog (``source``) when set."""
        path = self._files.get(key)
        if path is not None:
            text = path.read_bytes()
            if digest_of(text) == key[2]:
                return text
            self.scan()  # changed on disk since it was indexed
        if self.source is None or not DIGEST.match(key[2]):
            return None
        if key[2] in self._texts:  # fetched before (under another name, say): not again
            return self._texts[key[2]]
        try:
            async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
                answer = await client.get(f"{self.source}/definitions/{key[2]}")
        except httpx.HTTPError as exc:
            log.warning("definition_fetch_failed", digest=key[2][:12], error=type(exc).__name__)
            return None
        if answer.status_code != 200 or digest_of(answer.content) != key[2]:
            log.warning("definition_not_fetched", digest=key[2][:12], status=answer.status_code)
            return None
        if len(self._texts) >= MAX_TEXTS:
            self._texts.pop(next(iter(self._texts)))
        self._texts[key[2]] = answer.content
        return answer.content

    async def aclose(self) -> None:
        for served in self._served.values():
            await served.app.state.contract.clients.aclose()


class Generic:
    """ASGI: ``/definitions/{name}/{version}/{digest}/...`` to that definition's contract app,
    anything else to the listing and health routes."""

    def __init__(self, library: Library) -> None:
        self.library = library
        self.root = Starlette(routes=[
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/definitions", self.definitions, methods=["GET"]),
        ], lifespan=self.lifespan)  # fmt: skip

    @asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        yield
        await self.library.aclose()

    async def healthz(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def definitions(self, _request: Request) -> Response:
        return JSONResponse({"items": self.library.listing(),
                             "refused": self.library.problems})  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] in ("http", "websocket") and path.startswith(PREFIX):
            parts = path[len(PREFIX) :].split("/", 3)
            served = await self.library.get(*parts[:3]) if len(parts) == 4 else None
            if served is None:
                await _not_found(scope, receive, send)
                return
            inner = dict(scope)
            inner["path"] = "/" + parts[3]
            inner["raw_path"] = inner["path"].encode()
            inner["root_path"] = scope.get("root_path", "") + PREFIX + "/".join(parts[:3])
            await served.app(inner, receive, send)
            return
        await self.root(scope, receive, send)


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    body = {"type": "about:blank", "title": "No such definition", "status": 404,
            "code": "definition_not_found",
            "detail": "no definition of that name, version and digest is served here"}  # fmt: skip
    await JSONResponse(body, status_code=404, media_type=PROBLEM)(scope, receive, send)


def create_generic_app(
    folder: str | Path | None = None, source: str | None = None, *,
    egress: AddressPolicy | None = None,
) -> ASGIApp:  # fmt: skip
    """The generic connector serving the definitions of ``folder`` (default:
    ``SEEDOS_DEFINITIONS``) and those the catalog at ``source`` (default:
    ``SEEDOS_DEFINITIONS_SOURCE``, marketplace_service's URL) has published, calling their APIs
    only where ``egress`` allows (default: the egress rule as ``SEEDOS_EGRESS_ALLOWED_NETWORKS``
    sets it, public addresses only when unset)."""
    found = folder or os.environ.get("SEEDOS_DEFINITIONS")
    source = source or os.environ.get("SEEDOS_DEFINITIONS_SOURCE") or None
    rule = egress or egress_policy()
    return Generic(Library(Path(found) if found else None, source, egress=rule))


def app_factory() -> ASGIApp:
    return create_generic_app()
