"""Two-way sync through a declarative connector: the demo CRM's definition
(sdk/examples/definitions/demo-crm.yaml) run by the generic connector, installed from the catalog
at its version's and digest's URL, pulls into the document (records, edits, deletions), and the
outbox pushes edits and deletions back to the CRM: the same tests as the hand-written example's
(test_sync.py), against the definition."""

from __future__ import annotations

import pytest

from tests.connector_service.rig import generic_connector
from tests.connector_service.test_sync import (  # noqa: F401  (collected here, against this world)
    test_edits_on_both_sides_converge,
    test_initial_and_incremental_pull,
    world_of,
)


@pytest.fixture(scope="module")
def generic(tmp_path_factory):
    """The demo CRM's definition's URL on the generic connector."""
    with generic_connector(tmp_path_factory.mktemp("generic")) as url_of:
        yield url_of("demo-crm-declarative")


@pytest.fixture
async def world(rig, dsn, generic):
    async with world_of(rig, dsn, generic) as world:
        yield world
