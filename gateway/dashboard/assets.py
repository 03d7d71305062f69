"""The dashboard's files: its own (``static/``) and the third-party browser code ``make``
installs from npm (``vendor/node_modules``), served by the gateway itself, never from a CDN.

- URLs carry a version, so a browser keeps each file for a year and never asks again:
  ``/assets/<digest of every own file>/<path>`` (ES modules import each other by relative
  path, so one version for the folder keeps their imports versioned too), and
  ``/assets/vendor/<package>@<version>/<file>``.
- Bodies are gzipped once, on first request, and kept: the whole set is a few hundred KB.
- Bare imports (``import * as Y from 'yjs'``) resolve through an import map built from the
  packages' own ``exports`` (browser conditions first), so no bundler is needed.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from common.errors import NotFound

HERE = Path(__file__).parent
STATIC = HERE / "static"
VENDOR = HERE / "vendor" / "node_modules"
# What the browser code the pages load needs, and what those packages import
VENDOR_PACKAGES = ("yjs", "y-websocket", "y-indexeddb", "y-protocols", "lib0", "isomorphic.js")
CONDITIONS = ("browser", "module", "import", "default")
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
         ".svg": "image/svg+xml", ".json": "application/json", ".webmanifest":
         "application/manifest+json", ".woff2": "font/woff2", ".png": "image/png"}  # fmt: skip
VENDOR_TYPES = (".js", ".mjs")
IMMUTABLE = "public, max-age=31536000, immutable"
COMPRESSIBLE = ("text/", "application/json", "image/svg+xml", "application/manifest+json")


class AssetNotFound(NotFound):
    code, title = "asset_not_found", "No such file"


@dataclass(frozen=True, slots=True)
class _Body:
    raw: bytes
    gzipped: bytes | None
    media_type: str
    etag: str


def _resolve(target: object) -> str | None:
    """An ``exports`` value for a browser importing an ES module (Node's algorithm: the first
    key, in the object's order, that is one of the conditions)."""
    if isinstance(target, str):
        return target
    if isinstance(target, dict):
        for key, value in target.items():
            if key in CONDITIONS and (found := _resolve(value)) is not None:
                return found
    return None


class Assets:
    """The files and their URLs; one per gateway process (made in its lifespan)."""

    def __init__(self, static: Path = STATIC, vendor: Path = VENDOR) -> None:
        self.static, self.vendor = static, vendor
        digest = hashlib.sha256()
        for path in sorted(p for p in static.rglob("*") if p.is_file()):
            digest.update(path.relative_to(static).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
        self.version = digest.hexdigest()[:12]
        self.packages: dict[str, tuple[str, Path]] = {}  # name -> (version, folder)
        for name in VENDOR_PACKAGES:
            manifest = vendor / name / "package.json"
            if manifest.is_file():
                self.packages[name] = (json.loads(manifest.read_text())["version"], vendor / name)
        self.import_map = self._import_map()
        self.import_map_json = json.dumps({"imports": self.import_map}, separators=(",", ":"))
        digest = hashlib.sha256(self.import_map_json.encode()).digest()
        # what a Content-Security-Policy names to allow the inline import map
        self.import_map_hash = "'sha256-" + base64.b64encode(digest).decode() + "'"
        self._bodies: dict[Path, _Body] = {}

    @property
    def vendored(self) -> bool:
        """Whether ``make`` installed the browser packages (the records page needs them)."""
        return len(self.packages) == len(VENDOR_PACKAGES)

    def url(self, path: str) -> str:
        return f"/assets/{self.version}/{path}"

    def _import_map(self) -> dict[str, str]:
        imports: dict[str, str] = {}
        for name, (version, folder) in self.packages.items():
            exports = json.loads((folder / "package.json").read_text()).get("exports", {})
            if not isinstance(exports, dict) or not all(k.startswith(".") for k in exports):
                exports = {".": exports}
            for key, target in exports.items():
                found = _resolve(target)
                if "*" in key or found is None or not found.endswith(VENDOR_TYPES):
                    continue
                specifier = name + key[1:]
                imports[specifier] = f"/assets/vendor/{name}@{version}/{found.removeprefix('./')}"
        return imports

    def response(self, request: Request, path: Path, *, immutable: bool) -> Response:
        body = self._bodies.get(path)
        if body is None:
            body = self._bodies[path] = _load(path)
        headers = {"etag": body.etag, "vary": "accept-encoding",
                   "cache-control": IMMUTABLE if immutable else "no-cache"}  # fmt: skip
        if request.headers.get("if-none-match") == body.etag:
            return Response(status_code=304, headers=headers)
        content = body.raw
        if body.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
            content, headers["content-encoding"] = body.gzipped, "gzip"
        return Response(content, media_type=body.media_type, headers=headers)

    def own(self, version: str, path: str) -> tuple[Path, bool]:
        """One of the dashboard's files; immutable when asked for by the current version."""
        return _inside(self.static, path), version == self.version

    def vendored_file(self, package: str, path: str) -> Path:
        name, _, version = package.rpartition("@")
        found = self.packages.get(name)
        if found is None or found[0] != version or not path.endswith(VENDOR_TYPES):
            raise AssetNotFound(f"no such file: {package}/{path}")
        return _inside(found[1], path)


def _inside(root: Path, path: str) -> Path:
    """``root/path`` when that is a file under ``root`` (no ``..`` or links out of it)."""
    candidate = (root / path).resolve()
    if not candidate.is_relative_to(root.resolve()) or not candidate.is_file():
        raise AssetNotFound(f"no such file: {path}")
    return candidate


def _load(path: Path) -> _Body:
    raw = path.read_bytes()
    media_type = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "text/plain"
    if media_type.startswith(("text/", "application/javascript")):
        media_type += "; charset=utf-8"
    gzipped = gzip.compress(raw, 9, mtime=0) if media_type.startswith(COMPRESSIBLE) else None
    etag = '"' + hashlib.sha256(raw).hexdigest()[:20] + '"'
    return _Body(raw, gzipped, media_type, etag)
