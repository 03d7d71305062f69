"""Two-way sync through a declarative connector: the demo CRM's definition
(sdk/examples/definitions/demo-crm.yaml) run by the generic connector, installed from the catalog
at its version's and digest's URL, pulls into the document (records, edits, deletions), and the
outbox pushes edits and deletions back to the CRM: the same tests as the hand-written example's
(test_sync.py), against the definition."""

from __future__ import annotations

import httpx
import pytest

from seedos_sdk.testing.process import start
from tests.connector_service.rig import SDK_DIR
from tests.connector_service.test_sync import (  # noqa: F401  (collected here, against this world)
    test_edits_on_both_sides_converge,
    test_initial_and_incremental_pull,
    world_of,
)


@pytest.fixture(scope="module")
def generic(tmp_path_factory):
    """The generic connector serving the example definitions; the demo CRM's URL on it."""
    logs = tmp_path_factory.mktemp("generic")
    served = start("seedos_sdk.declarative.server:app_factory", factory=True, cwd=SDK_DIR,
                   env={"SEEDOS_DEFINITIONS": str(SDK_DIR / "examples" / "definitions"),
                        "SEEDOS_EGRESS_ALLOWED_NETWORKS": "127.0.0.0/8"},  # the CRM's loopback
                   log_path=logs / "generic.log")  # fmt: skip
    try:
        listing = httpx.get(served.url + "/definitions", timeout=10).json()
        found = [d for d in listing["items"] if d["name"] == "demo-crm-declarative"]
        assert found, listing
        yield served.url + found[0]["path"]
    finally:
        served.stop()


@pytest.fixture
async def world(rig, dsn, generic):
    async with world_of(rig, dsn, generic) as world:
        yield world
