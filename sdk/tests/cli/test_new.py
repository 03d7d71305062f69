"""``seedos-connector new``: wrong arguments write nothing; every auth variant renders a project
whose own tests (the conformance suite against its fixture API) pass as generated."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner, Result

from seedos_sdk.cli import new
from tests.cli import scaffolds
from tests.cli.scaffolds import AUTH_VARIANTS, said


def run_new(cli: typer.Typer, *args: str) -> Result:
    return CliRunner().invoke(cli, ["new", *args])


def run(*cmd: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return scaffolds.run(*cmd, cwd=cwd, timeout=timeout)


# --------------------------------------------------------------------------- wrong arguments


@pytest.mark.parametrize(
    "name",
    ["Acme", "1acme", "a", "acme_crm", "acme crm", "acme.crm", "a" * 64, "é-crm"],
)
def test_a_bad_name_is_refused_and_nothing_is_written(
    cli: typer.Typer, tmp_path: Path, name: str
) -> None:
    result = run_new(cli, name, "--auth", "api_key", "--output", str(tmp_path))

    assert result.exit_code == 2, result.output
    assert "Invalid value for 'NAME'" in said(result)
    assert "lowercase letters, digits and '-'" in said(result)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("import", "is a Python keyword"),
        ("json", "would shadow a module of the standard library"),
        ("httpx", "would shadow the installed distribution 'httpx'"),
        ("seedos-sdk", "would shadow a module the SDK"),
    ],
)
def test_a_name_whose_package_would_clash_is_refused(
    cli: typer.Typer, tmp_path: Path, name: str, why: str
) -> None:
    result = run_new(cli, name, "--auth", "none", "--output", str(tmp_path))

    assert result.exit_code == 2, result.output
    assert why in said(result)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_target_is_left_alone(cli: typer.Typer, tmp_path: Path) -> None:
    existing = tmp_path / "acme-crm"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")

    result = run_new(cli, "acme-crm", "--auth", "api_key", "--output", str(tmp_path))

    assert result.exit_code == 1, result.output
    assert f"{existing} already exists" in said(result)
    assert [p.name for p in existing.iterdir()] == ["notes.txt"]
    assert (existing / "notes.txt").read_text() == "mine"


def test_auth_is_required(cli: typer.Typer, tmp_path: Path) -> None:
    result = run_new(cli, "acme-crm", "--output", str(tmp_path))

    assert result.exit_code == 2, result.output
    assert "Missing option '--auth'" in said(result)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [
        ["--auth", "saml"],
        ["--auth", "api_key", "--description", 'with "quotes"'],
        ["--auth", "api_key", "--description", "x" * 81],
    ],
)
def test_a_bad_option_is_refused(cli: typer.Typer, tmp_path: Path, args: list[str]) -> None:
    result = run_new(cli, "acme-crm", *args, "--output", str(tmp_path))

    assert result.exit_code == 2, result.output
    assert "Invalid value for" in said(result)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_output_folder_is_refused(cli: typer.Typer, tmp_path: Path) -> None:
    result = run_new(cli, "acme-crm", "--auth", "none", "--output", str(tmp_path / "nowhere"))

    assert result.exit_code == 2, result.output
    assert "does not exist" in said(result)
    assert list(tmp_path.iterdir()) == []


# copier's scantree leaves an os.scandir iterator open when rendering fails part way.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_failed_render_leaves_nothing_behind(
    cli: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "template"
    broken.mkdir()
    (broken / "copier.yml").write_text("name: {type: str}\nauth: {type: str}\n")
    (broken / "a-fine-file.txt").write_text("fine\n")
    (broken / "z-broken.txt.jinja").write_text("{{ name | no_such_filter }}\n")
    monkeypatch.setattr(new, "TEMPLATE_DIR", broken)
    out = tmp_path / "out"
    out.mkdir()

    result = run_new(cli, "acme-crm", "--auth", "none", "--output", str(out))

    assert result.exit_code == 1, result.output
    assert "could not render the project" in said(result)
    assert list(out.iterdir()) == []


# --------------------------------------------------------------------------- generated projects


@pytest.mark.parametrize("auth", AUTH_VARIANTS)
def test_each_variant_renders_a_project_whose_tests_pass(
    cli: typer.Typer, tmp_path: Path, auth: str
) -> None:
    name = f"seedos-scaffold-{auth.replace('_', '-')}"
    package = name.replace("-", "_")
    result = run_new(cli, name, "--auth", auth, "--output", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "Next steps" in result.output
    project = tmp_path / name

    _check_dockerfile(project / "Dockerfile", package=package)
    _check_kubernetes(project / "k8s")
    _check_workflow(project / ".github" / "workflows" / "ci.yml")

    installed = run(sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(project),
                    cwd=project)  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    try:
        tested = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                     str(project / "tests"), cwd=project)  # fmt: skip
    finally:
        run(sys.executable, "-m", "pip", "uninstall", "-y", "-q", name, cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    summary = tested.stdout.strip().splitlines()[-1]
    expected = 8 if auth == "none" else 9  # 6 conformance checks + the project's own tests
    assert re.match(rf"{expected} passed in ", summary), tested.stdout


@pytest.mark.parametrize("auth", AUTH_VARIANTS)
def test_each_variant_passes_its_own_lint_even_with_the_longest_name(
    cli: typer.Typer, tmp_path: Path, auth: str
) -> None:
    pytest.importorskip("ruff")
    suffix = "-" + auth.replace("_", "-")
    name = "a" * (63 - len(suffix)) + suffix  # as long as a name may be
    args = ["--auth", auth, "--description", "x" * 80, "--author", 'Ann "O\'Neil" Café']
    result = run_new(cli, name, *args, "--output", str(tmp_path))
    assert result.exit_code == 0, result.output

    for lint in (["check", "."], ["format", "--check", "."]):
        linted = run(sys.executable, "-m", "ruff", *lint, cwd=tmp_path / name)
        assert linted.returncode == 0, linted.stdout + linted.stderr


def _check_dockerfile(path: Path, *, package: str) -> None:
    logical = re.sub(r"\\\n", " ", path.read_text())  # join continued lines
    lines = [line.split(None, 1) for line in logical.splitlines() if line.strip()]
    instructions = [(w[0].upper(), w[1] if len(w) > 1 else "") for w in lines if w[0][0] != "#"]
    users = [value for op, value in instructions if op == "USER"]
    assert users, "the image sets a USER"
    assert users[-1].split(":")[0] not in ("root", "0"), users
    assert ("FROM", "python:3.11-slim") in instructions
    (cmd,) = [value for op, value in instructions if op == "CMD"]
    assert f'"uvicorn", "{package}.connector:app"' in cmd
    assert '"--port", "8080"' in cmd


def _check_kubernetes(folder: Path) -> None:
    deployment = yaml.safe_load((folder / "deployment.yaml").read_text())
    assert deployment["kind"] == "Deployment"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": 8080}
    limits: dict[str, Any] = container["resources"]["limits"]
    assert {"cpu", "memory"} <= set(limits)
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])

    service = yaml.safe_load((folder / "service.yaml").read_text())
    assert service["kind"] == "Service"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert [p["port"] for p in service["spec"]["ports"]] == [8080]


def _check_workflow(path: Path) -> None:
    jobs = yaml.safe_load(path.read_text())["jobs"]
    assert set(jobs) == {"lint", "test", "build"}
    runs = {name: " ".join(s.get("run", "") for s in job["steps"]) for name, job in jobs.items()}
    assert "ruff check" in runs["lint"]
    assert "pytest" in runs["test"]
    (build,) = [
        s for s in jobs["build"]["steps"] if "docker/build-push-action" in s.get("uses", "")
    ]
    assert build["with"]["push"] is False
