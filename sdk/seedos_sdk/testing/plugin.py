"""pytest plugin (loaded through the ``pytest11`` entry point): the ``serve_asgi`` fixture."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from seedos_sdk.testing.process import Served, start


@pytest.fixture
def serve_asgi() -> Iterator[Any]:
    """Factory: ``serve_asgi("pkg.module:app", env={...})`` runs the app as a real process on a
    free loopback port and returns its :class:`Served` (``.url``); stopped after the test."""
    running: list[Served] = []

    def factory(app: str, **kw: Any) -> Served:
        served = start(app, **kw)
        running.append(served)
        return served

    yield factory
    for served in running:
        served.stop()
