"""The generic connector: one contract server that runs any connector definition.

Each definition is served under a path that names its exact version and content::

    /definitions/{name}/{version}/{digest}/manifest, /check, /streams/{s}/read, ...

(``digest``: the SHA-256 of the definition's text), so an install that calls that URL keeps
calling the definition it was installed with, whatever is published later. Definitions come
from a folder of ``*.yaml`` files (``SEEDOS_DEFINITIONS``); a path naming a definition the
folder does not hold, or holds with another digest, is 404. ``GET /definitions`` lists what is
served. Each definition is compiled once, on first use.

Run: ``SEEDOS_DEFINITIONS=path/to/definitions uvicorn seedos_sdk.declarative.server:app``.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from seedos_sdk.declarative.definition import Definition, DefinitionError, digest_of, load
from seedos_sdk.declarative.engine import build
from seedos_sdk.server import create_app

log = structlog.get_logger(component="seedos_sdk.declarative")
PREFIX = "/definitions/"
PROBLEM = "application/problem+json"


@dataclass
class Served:
    definition: Definition
    app: Starlette


class Library:
    """The definitions of a folder, by (name, version, digest), compiled on first use."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._files: dict[tuple[str, str, str], Path] = {}
        self._served: dict[tuple[str, str, str], Served] = {}
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
            text = path.read_bytes()
            try:
                definition = load(text)
            except DefinitionError as exc:
                self.problems[path.name] = exc.problems
                log.warning("definition_refused", file=path.name, problems=exc.problems)
                continue
            self._files[(definition.name, definition.version, definition.digest)] = path

    def listing(self) -> list[dict[str, Any]]:
        return [{"name": n, "version": v, "digest": d, "path": f"{PREFIX}{n}/{v}/{d}"}
                for (n, v, d) in sorted(self._files)]  # fmt: skip

    def get(self, name: str, version: str, digest: str) -> Served | None:
        key = (name, version, digest)
        served = self._served.get(key)
        if served is not None:
            return served
        path = self._files.get(key)
        if path is None:
            return None
        text = path.read_bytes()
        if digest_of(text) != digest:  # changed on disk since it was indexed
            self.scan()
            return None
        started = time.perf_counter()
        definition = load(text)
        served = Served(definition, create_app(build(definition)))
        self._served[key] = served
        log.info("definition_loaded", name=name, version=version, digest=digest[:12],
                 ms=round((time.perf_counter() - started) * 1000, 2))  # fmt: skip
        return served

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
            served = self.library.get(*parts[:3]) if len(parts) == 4 else None
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


def create_generic_app(folder: str | Path | None = None) -> ASGIApp:
    """The generic connector serving the definitions of ``folder`` (default:
    ``SEEDOS_DEFINITIONS``)."""
    found = folder or os.environ.get("SEEDOS_DEFINITIONS")
    return Generic(Library(Path(found) if found else None))


def app_factory() -> ASGIApp:
    return create_generic_app()
