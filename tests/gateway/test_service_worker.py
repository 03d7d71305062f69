"""``/sw.js``, the dashboard's service worker: served at the root (its scope is the whole
dashboard) to anyone, never kept by a cache between, and carrying this deployment's assets
version, the URLs it keeps at install (every own file, every package file the import map names)
and the dashboard's page paths. Other files make another text (browsers install it)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import httpx
import pytest

from gateway.dashboard.assets import STATIC, Assets
from gateway.dashboard.worker import TEMPLATE, script


@pytest.fixture(scope="module")
def files() -> Assets:
    return Assets()


def settings(text: str) -> dict:
    """The worker's first line, ``const SEEDOS = {...}``, as data."""
    first, _, rest = text.partition("\n")
    found = re.fullmatch(r"const SEEDOS = (\{.*\})", first)
    assert found, first[:80]
    assert rest == TEMPLATE.read_text()  # the rest is the static template, as it is
    return json.loads(found.group(1))


async def test_served_at_the_root_uncached_with_the_assets(suite, files: Assets) -> None:
    async with httpx.AsyncClient(base_url=suite.gateway) as client:
        r = await client.get("/sw.js")  # no session: it holds nothing of anyone's
        assert r.status_code == 200
        assert r.headers["content-type"].split(";")[0] == "text/javascript"
        assert r.headers["cache-control"] == "no-cache"
        assert "service-worker-allowed" not in r.headers  # its own path's scope, /, is enough
        # a page's script-src 'self' covers it, and the worker's fetches stay same-origin
        assert "connect-src 'self'" in r.headers["content-security-policy"]
        found = settings(r.text)
        # the same files as the gateway's own (each Assets reads the same folder)
        assert found["version"] == files.version
        own = sorted(p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file())
        assert found["precache"][: len(own)] == [f"/assets/{files.version}/{p}" for p in own]
        assert set(found["precache"][len(own) :]) == set(files.import_map.values())
        assert files.import_map["yjs"] in found["precache"]
        # each URL it keeps at install is served (install fails if one is missing)
        for url in found["precache"][:3] + found["precache"][-3:]:
            assert (await client.get(url)).status_code == 200, url
        # the navigations it keeps: the dashboard's pages, never sign-in or the API docs
        pages = [re.compile(p) for p in found["pages"]]
        for path in ("/", "/integrations/abc", "/integrations/abc/records", "/settings"):
            assert any(p.search(path) for p in pages), path
        for path in ("/auth/sign-in", "/auth/logout", "/docs", "/sw.js", "/api/v1/me", "/a/"):
            assert not any(p.search(path) for p in pages), path


def test_other_assets_make_another_worker(files: Assets, tmp_path: Path) -> None:
    static = tmp_path / "static"
    shutil.copytree(STATIC, static)
    same = settings(script(Assets(static=static, vendor=files.vendor)).decode())
    assert same["version"] == files.version
    (static / "css" / "app.css").write_text((STATIC / "css" / "app.css").read_text() + "\n")
    (static / "js" / "added.js").write_text("export const added = 1\n")
    changed = settings(script(Assets(static=static, vendor=files.vendor)).decode())
    assert changed["version"] != files.version
    assert f"/assets/{changed['version']}/js/added.js" in changed["precache"]
    assert not any(files.version in url for url in changed["precache"])
