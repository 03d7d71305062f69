"""``seedos-connector new --declarative``: a connector definition project whose tests (the
conformance suite against the generic connector serving its connector.yaml, and a stand-in API)
pass as generated, for every auth variant; wrong arguments write nothing, as without
--declarative."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner, Result

from seedos_sdk.declarative import load_file
from tests.cli import scaffolds
from tests.cli.scaffolds import AUTH_VARIANTS, said


def run_new(cli: typer.Typer, *args: str) -> Result:
    return CliRunner().invoke(cli, ["new", "--declarative", *args])


def run(*cmd: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return scaffolds.run(*cmd, cwd=cwd, timeout=timeout)


# --------------------------------------------------------------------------- wrong arguments


@pytest.mark.parametrize("name", ["Acme", "1acme", "a", "acme_crm", "acme.crm", "a" * 64])
def test_a_bad_name_is_refused_and_nothing_is_written(
    cli: typer.Typer, tmp_path: Path, name: str
) -> None:
    result = run_new(cli, name, "--auth", "api_key", "--output", str(tmp_path))

    assert result.exit_code == 2, result.output
    assert "Invalid value for 'NAME'" in said(result)
    assert "lowercase letters, digits and '-'" in said(result)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_target_is_left_alone(cli: typer.Typer, tmp_path: Path) -> None:
    existing = tmp_path / "acme-crm"
    existing.mkdir()
    (existing / "connector.yaml").write_text("mine")

    result = run_new(cli, "acme-crm", "--auth", "api_key", "--output", str(tmp_path))

    assert result.exit_code == 1, result.output
    assert f"{existing} already exists" in said(result)
    assert (existing / "connector.yaml").read_text() == "mine"
    assert [p.name for p in existing.iterdir()] == ["connector.yaml"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "Missing option '--auth'"),
        (["--auth", "saml"], "Invalid value for '--auth'"),
        (["--auth", "none", "--description", 'with "quotes"'], "Invalid value for '--description'"),
    ],
)
def test_a_missing_or_bad_option_is_refused(
    cli: typer.Typer, tmp_path: Path, args: list[str], says: str
) -> None:
    result = run_new(cli, "acme-crm", *args, "--output", str(tmp_path))

    assert result.exit_code == 2, result.output
    assert says in said(result)
    assert list(tmp_path.iterdir()) == []


def test_a_name_that_would_shadow_a_python_module_is_fine_for_a_definition(
    cli: typer.Typer, tmp_path: Path
) -> None:
    # a definition makes no Python package, so there is nothing its name could shadow
    result = run_new(cli, "httpx", "--auth", "none", "--output", str(tmp_path))

    assert result.exit_code == 0, result.output
    assert load_file(tmp_path / "httpx" / "connector.yaml").name == "httpx"


# --------------------------------------------------------------------------- generated projects


@pytest.mark.parametrize("auth", AUTH_VARIANTS)
def test_each_variant_renders_a_definition_whose_tests_pass(
    cli: typer.Typer, tmp_path: Path, auth: str
) -> None:
    name = f"acme-{auth.replace('_', '-')}"
    result = run_new(cli, name, "--auth", auth, "--output", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "Next steps" in result.output
    assert "seedos-connector dev --definition connector.yaml" in result.output
    project = tmp_path / name
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()) == [
        ".gitignore", "README.md", "connector.yaml", "pyproject.toml", "tests/conftest.py",
        "tests/stand_in_api.py", "tests/test_connector.py",
    ]  # fmt: skip

    definition = load_file(project / "connector.yaml")
    raw = definition.raw
    assert (raw["name"], raw["version"], raw["auth"]["type"]) == (name, "0.1.0", auth)
    (stream,) = raw["streams"]
    assert stream["incremental"]["cursor_field"] == "updated_at"
    assert stream["pagination"]["type"] == "cursor"
    assert {"upsert", "delete"} <= stream["write"].keys()
    assert [a["name"] for a in raw["actions"]] == ["ping"]
    assert "check" in raw
    # the comments explain it to its author: the YAML keeps them
    assert "# Every request goes to this origin" in (project / "connector.yaml").read_text()

    # seedos-sdk, which runs this test, is all the project needs
    tested = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    summary = tested.stdout.strip().splitlines()[-1]
    expected = 9 if auth == "none" else 10  # 6 conformance checks + the project's own tests
    assert re.match(rf"{expected} passed in ", summary), tested.stdout


def test_the_generated_tests_fail_when_the_definition_breaks(
    cli: typer.Typer, tmp_path: Path
) -> None:
    result = run_new(cli, "acme-crm", "--auth", "api_key", "--output", str(tmp_path))
    assert result.exit_code == 0, result.output
    project = tmp_path / "acme-crm"
    path = project / "connector.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["streams"][0]["records"] = "data"  # where this API does not put its records
    path.write_text(yaml.safe_dump(raw, sort_keys=False))

    tested = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project)

    assert tested.returncode == 1, tested.stdout + tested.stderr
    assert "FAILED tests/test_connector.py::test_a_sync_reads_every_page" in tested.stdout


@pytest.mark.parametrize("auth", AUTH_VARIANTS)
def test_each_variant_passes_its_own_lint_even_with_the_longest_name(
    cli: typer.Typer, tmp_path: Path, auth: str
) -> None:
    pytest.importorskip("ruff")
    suffix = "-" + auth.replace("_", "-")
    name = "a" * (63 - len(suffix)) + suffix  # as long as a name may be
    args = ["--auth", auth, "--description", "x: #y {z} " * 8, "--author", 'Ann "O\'Neil" Café']
    result = run_new(cli, name, *args, "--output", str(tmp_path))
    assert result.exit_code == 0, result.output
    project = tmp_path / name
    assert load_file(project / "connector.yaml").raw["description"] == "x: #y {z} " * 8

    for lint in (["check", "."], ["format", "--check", "."]):
        linted = run(sys.executable, "-m", "ruff", *lint, cwd=project)
        assert linted.returncode == 0, linted.stdout + linted.stderr
