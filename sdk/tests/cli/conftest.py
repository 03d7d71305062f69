from __future__ import annotations

import pytest
import typer

from tests.cli.scaffolds import new_app


@pytest.fixture
def cli() -> typer.Typer:
    """`seedos-connector new` alone, as a subcommand of a group as in the real CLI."""
    return new_app()
