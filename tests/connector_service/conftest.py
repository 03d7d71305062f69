from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.connector_service.rig import Rig, start_rig, stop_rig


@pytest.fixture(scope="package")
def rig(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """The suite, the demo CRM and the example connector, shared by this folder's tests."""
    running = start_rig(dsn, tmp_path_factory.mktemp("rig"))
    try:
        yield running
    finally:
        stop_rig(running)
