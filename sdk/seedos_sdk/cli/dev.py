"""``seedos-connector dev --definition connector.yaml``: the generic connector serving one
definition file on this machine, reloaded when the file changes.

The last good version is served at the URL an install would call,
``/definitions/{name}/{version}/{sha-256 of the text}``, and at ``/current`` whatever its
digest. A saved change that loads is served at once (at its own digest's URL: the old one is
then 404, as the generic connector answers for a text it does not have); one with problems is
printed, every problem with where it is, and listed under ``refused`` by ``GET /definitions``,
while the last good version goes on being served. Until a first version loads, ``/current``
answers 503 with the problems.
"""

from __future__ import annotations

import asyncio
from pathlib import Path, PurePath
from typing import Any

import typer
import uvicorn
import watchfiles
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from seedos_sdk.cli import definitions as definition_files
from seedos_sdk.declarative import DefinitionError, build, load
from seedos_sdk.declarative.server import PROBLEM, Generic, Library, Served
from seedos_sdk.egress import EGRESS_SETTING, egress_policy
from seedos_sdk.server import create_app

CURRENT = "/current"


class WatchedFile(Library):
    """The generic connector's library holding one file's last good version."""

    def __init__(self, path: Path, *, egress: str, base: str) -> None:
        super().__init__(None, egress=egress_policy({EGRESS_SETTING: egress}))
        self.path = path
        self.base = base  # where the server listens, for the URLs printed
        self.current: Served | None = None
        self._text: str | None = None
        self._retired: list[Served] = []  # closed when the server stops

    def reload(self) -> None:
        """Read the file again: serve it if it loads, else print its problems."""
        try:
            text = self.path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self._refuse([f"(file): cannot be read: {exc}"])
            return
        if text == self._text:
            return
        self._text = text
        try:
            definition = load(text)
        except DefinitionError as exc:
            self._refuse(exc.problems)
            return
        try:
            served = Served(definition, create_app(build(definition, egress=self.egress)))
        except Exception as exc:  # the watcher goes on: the author fixes it and saves
            self._refuse([f"(file): the generic connector cannot run it: {exc}"])
            return
        if self.current is not None:
            self._retired.append(self.current)
        self.current = served
        self.problems = {}
        typer.secho(f"serving {definition_files.describe(definition, self.path)}; an install"
                    " would call:", fg="green")  # fmt: skip
        typer.echo(f"  {self.base}{definition_files.contract_path(definition)}")

    def _refuse(self, problems: list[str]) -> None:
        self.problems = {self.path.name: problems}
        definition_files.print_problems(self.path, problems, err=False)
        if self.current is not None:
            kept = self.current.definition
            typer.secho(f"still serving {definition_files.describe(kept, self.path)}",
                        fg="yellow")  # fmt: skip

    def listing(self) -> list[dict[str, Any]]:
        if self.current is None:
            return []
        d = self.current.definition
        path = definition_files.contract_path(d)
        return [{"name": d.name, "version": d.version, "digest": d.digest, "path": path}]

    async def get(self, name: str, version: str, digest: str) -> Served | None:
        current = self.current
        if current is None:
            return None
        d = current.definition
        return current if (d.name, d.version, d.digest) == (name, version, digest) else None

    async def aclose(self) -> None:
        for served in [*self._retired, *([self.current] if self.current else [])]:
            await served.app.state.contract.clients.aclose()


class DevApp:
    """The generic connector over a :class:`WatchedFile`, with ``/current`` standing for the
    path of its last good version."""

    def __init__(self, library: WatchedFile) -> None:
        self.library = library
        self.generic = Generic(library)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] in ("http", "websocket") and (
            path == CURRENT or path.startswith(CURRENT + "/")
        ):
            current = self.library.current
            if current is None:
                await _no_definition(self.library.problems, scope, receive, send)
                return
            scope = dict(scope)
            rest = path[len(CURRENT) :]
            scope["path"] = definition_files.contract_path(current.definition) + rest
            scope["raw_path"] = scope["path"].encode()
        await self.generic(scope, receive, send)


async def _no_definition(
    problems: dict[str, list[str]], scope: Scope, receive: Receive, send: Send
) -> None:
    body = {"type": "about:blank", "title": "No definition loaded yet", "status": 503,
            "code": "definition_not_loaded",
            "detail": "the definition has problems: fix them and save",
            "problems": [p for found in problems.values() for p in found]}  # fmt: skip
    await JSONResponse(body, status_code=503, media_type=PROBLEM)(scope, receive, send)


async def _watch(library: WatchedFile, stop: asyncio.Event) -> None:
    """Reload the file whenever its folder says it changed (editors that save by renaming a
    new file over it included)."""
    target = library.path.resolve()
    folder = target.parent
    async for changes in watchfiles.awatch(folder, stop_event=stop, recursive=False):
        if any(PurePath(changed).name == target.name for _, changed in changes):
            library.reload()


def run(path: Path, *, host: str, port: int, allow_hosts: list[str]) -> None:
    """Serve ``path`` on ``host:port`` until interrupted, reloading it when it changes."""
    if not path.is_file():
        definition_files.fail(f"{path} is not a file")
    egress = definition_files.egress_allowing([("--allow-host", _url(h)) for h in allow_hosts])
    base = f"http://{host}:{port}"
    library = WatchedFile(path, egress=egress.value, base=base)
    library.reload()
    typer.echo(
        f"the last good version, whatever its digest: {base}{CURRENT}\n"
        f"egress: {egress.said}\n"
        f"watching {path}: each save is served at once (one with problems is listed, and the"
        " last good version kept). Ctrl-C stops."
    )
    asyncio.run(_serve(library, host=host, port=port))


async def _serve(library: WatchedFile, *, host: str, port: int) -> None:
    config = uvicorn.Config(DevApp(library), host=host, port=port, log_level="info")
    server = uvicorn.Server(config)
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch(library, stop))
    try:
        await server.serve()
    finally:
        stop.set()
        await watcher


def _url(host: str) -> str:
    """``host`` (a name or an address) as a URL to check; a URL as it is."""
    if "://" in host:
        return host
    return f"http://[{host.strip('[]')}]" if ":" in host else f"http://{host}"
