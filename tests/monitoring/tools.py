"""Where the tests find Debian's prometheus and promtool: unpacked by the Makefile under
.cache/prometheus (``make .cache/prometheus/usr/bin/promtool``, part of ``make test``)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT

PROMETHEUS_CONFIG_DIR = ROOT / "prometheus"
BIN = ROOT / ".cache" / "prometheus" / "usr" / "bin"


def binary(name: str) -> Path:
    path = BIN / name
    assert path.exists(), f"{path} is missing: run `make {path.relative_to(ROOT)}`"
    return path
