"""What the tests of `seedos-connector new` share, for hand-written projects and definitions."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import typer
from typer.testing import Result

from seedos_sdk.cli.new import new_command

AUTH_VARIANTS = ["oauth2", "api_key", "basic", "none"]


def new_app() -> typer.Typer:
    app = typer.Typer()
    app.callback()(lambda: None)  # a group, so `new` is a subcommand as in the real CLI
    app.command("new")(new_command)
    return app


def said(result: Result) -> str:
    """The output as one line, without the boxes rich draws around errors."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())


def run(*cmd: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """``cmd`` in ``cwd``, outside this pytest (none of its PYTEST_ settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
