"""The SDK stands alone: it imports nothing of the SEED-OS services, and its plugin works."""

from __future__ import annotations

import ast
from pathlib import Path

import httpx

PACKAGE = Path(__file__).resolve().parents[1] / "seedos_sdk"
SUITE = {"common", "gateway", "connector_service", "marketplace_service", "seedos_cli"}


def test_the_sdk_imports_none_of_the_suite():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in SUITE]
    assert not offenders, offenders


def test_serve_asgi_fixture_runs_an_app_as_a_process(serve_asgi):
    served = serve_asgi("sample_connector:app", cwd=Path(__file__).parent / "server")
    assert served.process.pid > 0
    assert httpx.get(served.url + "/healthz").json()["connector"] == "sample"
