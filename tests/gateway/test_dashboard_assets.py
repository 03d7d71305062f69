"""The dashboard's files as the gateway serves them: versioned URLs cached for a year, gzipped,
ETags; npm's browser packages under their version, resolved by an import map built from their
``exports`` (browser conditions first) and allowed by its hash in the page's policy; nothing
outside the dashboard's folders, and nothing but scripts from node_modules. Pages send people
without a session to sign in, and come back."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import httpx
import pytest

from common.roles import Role
from gateway.dashboard.assets import STATIC, Assets
from tests.people import person
from tests.support import make_tenant


@pytest.fixture(scope="module")
def files() -> Assets:
    return Assets()


def test_the_import_map_follows_the_packages_exports(files: Assets) -> None:
    assert files.vendored, "make installs gateway/dashboard/vendor's npm packages"
    yjs = files.packages["yjs"][0]
    imports = files.import_map
    assert imports["yjs"] == f"/assets/vendor/yjs@{yjs}/dist/yjs.mjs"  # "module", not "require"
    assert imports["y-protocols/sync"].endswith("/sync.js")
    assert imports["lib0/encoding"].endswith("/encoding.js")
    # a browser gets the browser build where a package has one for Node too
    assert imports["isomorphic.js"].endswith("/browser.mjs")
    assert imports["lib0/webcrypto"].endswith("/webcrypto.js")
    assert not any("*" in k or v.endswith(".cjs") for k, v in imports.items())


async def test_versioned_gzipped_and_cached(suite, files: Assets) -> None:
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        css = await client.get(files.url("css/app.css"), headers={"accept-encoding": "gzip"})
        assert css.status_code == 200 and css.headers["content-encoding"] == "gzip"
        assert css.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert css.text == (STATIC / "css" / "app.css").read_text()  # httpx decoded it
        assert int(css.headers["content-length"]) < len(css.text) / 2
        again = await client.get(files.url("css/app.css"),
                                 headers={"if-none-match": css.headers["etag"]})  # fmt: skip
        assert again.status_code == 304 and not again.content
        # an old version's URL gets today's file, but only until the next look
        stale = await client.get("/assets/0123456789ab/css/app.css")
        assert stale.status_code == 200 and stale.headers["cache-control"] == "no-cache"
        yjs = await client.get(files.import_map["yjs"])
        assert yjs.status_code == 200 and yjs.headers["content-type"].startswith("text/javascript")
        assert "immutable" in yjs.headers["cache-control"]


@pytest.mark.parametrize("path", [
    "/assets/x/%2e%2e/pages.py", "/assets/x/..%2f..%2fpages.py", "/assets/x/css/nothing.css",
    "/assets/vendor/yjs@0.0.1/dist/yjs.mjs", "/assets/vendor/yjs/dist/yjs.mjs",
    "/assets/vendor/ws@8.0.0/index.js",
])  # fmt: skip
async def test_nothing_else_is_served(suite, files: Assets, path: str) -> None:
    yjs = files.packages["yjs"][0]
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        r = await client.get(path)
        assert r.status_code == 404, (path, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        # only scripts from a package: not its package.json, maps or sources of other kinds
        r = await client.get(f"/assets/vendor/yjs@{yjs}/package.json")
        assert r.status_code == 404


async def test_pages_want_a_session_and_name_the_import_map(suite, dsn, files: Assets) -> None:
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        r = await client.get("/integrations/x/records?stream=contacts")
        assert r.status_code == 303
        assert r.headers["location"] == (
            "/auth/sign-in?return_to=/integrations/x/records%3Fstream%3Dcontacts"
        )
        assert (await client.get("/")).headers["location"] == "/auth/sign-in"
        t = await make_tenant(dsn, role=Role.admin)
        who = await person(suite.gateway, dsn, t, "viewer")
        page = await client.get("/integrations/x/records", headers=who.cookie)
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    found = re.search(r'<script type="importmap">(.*?)</script>', page.text, flags=re.S)
    assert found and json.loads(found.group(1)) == {"imports": files.import_map}
    digest = base64.b64encode(hashlib.sha256(found.group(1).encode()).digest()).decode()
    policy = page.headers["content-security-policy"]
    assert f"script-src 'self' 'sha256-{digest}'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
