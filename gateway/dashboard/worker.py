"""The dashboard's service worker, served at ``/sw.js`` so that its scope is the whole origin.

Its code is a static file (``sw.js`` beside this module); what it needs to know of this
deployment goes in one ``const SEEDOS = {...}`` line above it: the assets' version (the digest
in ``/assets/<digest>/...``), the URLs it keeps at install (every own file and every package
file the import map names) and the dashboard's page paths (the navigations it keeps a copy of).
A deploy with other files therefore serves another text, and browsers install the new worker,
which drops the old version's files.

It is served ``no-cache`` (browsers compare it with the installed one at each navigation) and
without a session: it holds nothing of anyone's.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.routing import Route

from gateway.dashboard import pages
from gateway.dashboard.assets import Assets

router = APIRouter(include_in_schema=False)
TEMPLATE = Path(__file__).parent / "sw.js"
PATH = "/sw.js"


def page_patterns() -> list[str]:
    """Regular expressions of the paths of the dashboard's pages (from its router): a
    navigation to one of them is kept for offline use; to anything else (``/auth/*``,
    ``/docs``), never."""
    out = []
    for route in pages.router.routes:
        if isinstance(route, Route) and "GET" in (route.methods or ()):
            if route.path.startswith("/assets/"):
                continue
            out.append("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(route.path)) + "$")
    return out


def precache(files: Assets) -> list[str]:
    """Every URL the worker keeps at install: the dashboard's own files and the browser
    packages' files the import map names."""
    found = (p for p in files.static.rglob("*") if p.is_file())
    own = sorted(p.relative_to(files.static).as_posix() for p in found)
    return [files.url(path) for path in own] + sorted(set(files.import_map.values()))


@lru_cache(maxsize=4)
def script(files: Assets) -> bytes:
    """The worker's text for these files: the settings line, then the template."""
    header = {"version": files.version, "precache": precache(files), "pages": page_patterns()}
    line = "const SEEDOS = " + json.dumps(header, separators=(",", ":")) + "\n"
    return (line + TEMPLATE.read_text()).encode()


@router.get(PATH)
async def service_worker(request: Request) -> Response:
    return Response(
        script(pages.assets(request)),
        media_type="text/javascript",
        headers={"cache-control": "no-cache"},
    )
