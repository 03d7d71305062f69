"""``seedos-connector new NAME --auth SCHEME [--declarative]``: scaffold a connector project.

The project is rendered with copier from a template shipped in this package. A hand-written
connector (``seedos_sdk/templates/connector``): source with a sample stream and action, tests
that run the conformance suite against a local fixture API, README, Dockerfile, Kubernetes
manifests and a GitHub Actions workflow. With ``--declarative``, a connector definition
(``seedos_sdk/templates/definition``): ``connector.yaml`` with a sample stream (pages, an
incremental cursor, writes), action and check, tests that run the conformance suite against the
generic connector serving it and a small stand-in API, and a README. Nothing is written when an
argument is wrong, and a half-written project is removed when rendering fails.
"""

from __future__ import annotations

import importlib.metadata
import keyword
import re
import shutil
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import copier
import typer

TEMPLATE_DIR = Path(__file__).parents[1] / "templates" / "connector"
DEFINITION_TEMPLATE_DIR = Path(__file__).parents[1] / "templates" / "definition"
NAME = re.compile(r"^[a-z][a-z0-9-]{1,62}$")
DESCRIPTION_MAX = 80
RESERVED_PACKAGES = frozenset({"seedos_sdk", "tests", "fixture_api", "conftest"})


class AuthChoice(StrEnum):
    """How the external API authenticates."""

    oauth2 = "oauth2"
    api_key = "api_key"
    basic = "basic"
    none = "none"


def _check_name(ctx: typer.Context, name: str) -> str:
    if not NAME.match(name):
        raise typer.BadParameter(
            "use 2 to 63 lowercase letters, digits and '-', starting with a letter (e.g. acme-crm)"
        )
    if ctx.params.get("declarative"):
        return name  # a definition makes no Python package: nothing it could shadow
    package = name.replace("-", "_")
    if keyword.iskeyword(package):
        raise typer.BadParameter(f"its package {package!r} is a Python keyword")
    if clash := _clash(package):
        raise typer.BadParameter(f"its package {package!r} would shadow {clash}")
    return name


def _clash(package: str) -> str | None:
    """What importing ``package`` already means here, unless that is another connector."""
    if package in sys.stdlib_module_names:
        return "a module of the standard library"
    if package in RESERVED_PACKAGES:
        return "a module the SDK or the generated tests use"
    owners = importlib.metadata.packages_distributions().get(package, [])
    others = sorted(d for d in set(owners) if not _is_connector(d))
    return f"the installed distribution {others[0]!r}" if others else None


def _is_connector(distribution: str) -> bool:
    """Whether an installed distribution is built on seedos-sdk (say, an earlier render)."""
    try:
        requires = importlib.metadata.requires(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return False
    return any(re.match(r"seedos[-_.]sdk\b", r, re.IGNORECASE) for r in requires)


def _check_description(description: str) -> str:
    if len(description) > DESCRIPTION_MAX or re.search(r'[\x00-\x1f"\\]', description):
        raise typer.BadParameter(
            f"one line of at most {DESCRIPTION_MAX} characters, without double quotes or"
            " backslashes"
        )
    return description


def new_command(
    name: Annotated[
        str,
        typer.Argument(
            help="The connector's name: 2 to 63 lowercase letters, digits and '-', starting"
            " with a letter (e.g. acme-crm). Also the project folder's name.",
            callback=_check_name,
            metavar="NAME",
            show_default=False,
        ),
    ],
    auth: Annotated[
        AuthChoice,
        typer.Option(
            "--auth",
            help="How the external API authenticates: OAuth 2.0 authorization code, an API"
            " key, username and password, or nothing.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="parent folder, default the current one",
            exists=True,
            file_okay=False,
            dir_okay=True,
            writable=True,
        ),
    ] = None,
    description: Annotated[
        str,
        typer.Option(
            help=f"One line (at most {DESCRIPTION_MAX} characters) shown in the marketplace.",
            callback=_check_description,
        ),
    ] = "",
    author: Annotated[
        str, typer.Option(help="Author named in pyproject.toml (in README.md with --declarative).")
    ] = "",
    declarative: Annotated[
        bool,
        typer.Option(
            "--declarative",
            help="A connector definition (connector.yaml, run by the SDK's generic connector)"
            " instead of Python code.",
            is_eager=True,  # read before NAME, whose checks depend on it
        ),
    ] = False,
) -> None:
    """Create a connector project: a sample stream and action calling an HTTP API, tests with
    the conformance suite, Dockerfile, Kubernetes manifests and CI; with --declarative, a
    connector definition with the same sample, tests against a stand-in API, and a README. Its
    tests pass as generated."""
    target = (output or Path.cwd()).resolve() / name
    if target.exists() or target.is_symlink():
        typer.secho(
            f"Error: {target} already exists; choose another name or --output folder.",
            fg="red",
            err=True,
        )
        raise typer.Exit(1)
    data = {"name": name, "auth": auth.value, "author": author}
    if description:
        data["description"] = description
    try:
        template = DEFINITION_TEMPLATE_DIR if declarative else TEMPLATE_DIR
        copier.run_copy(
            str(template), str(target), data=data, defaults=True, quiet=True, unsafe=False
        )
    except BaseException as exc:
        shutil.rmtree(target, ignore_errors=True)
        if not isinstance(exc, Exception):
            raise
        typer.secho(f"Error: could not render the project: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    if declarative:
        _print_definition_next_steps(target, name=name, auth=auth)
    else:
        _print_next_steps(target, name=name, auth=auth)


def _print_definition_next_steps(target: Path, *, name: str, auth: AuthChoice) -> None:
    typer.secho(f"Created {name} (a connector definition, {auth.value} auth) in {target}",
                fg="green")  # fmt: skip
    typer.echo(
        "\nNext steps:\n"
        f"  cd {_shown(target)}\n"
        "  python3.11 -m venv .venv && . .venv/bin/activate\n"
        f"  pip install -e '{_sdk_requirement()}'   # seedos-sdk is not on PyPI yet\n"
        "  pytest                                   # conformance suite against the stand-in API\n"
        "  seedos-connector dev --definition connector.yaml\n"
        "\nThen edit connector.yaml for your API; README.md covers testing it against your API"
        " and `seedos-connector publish`."
    )


def _print_next_steps(target: Path, *, name: str, auth: AuthChoice) -> None:
    package = name.replace("-", "_")
    typer.secho(f"Created {name} ({auth.value} auth) in {target}", fg="green")
    typer.echo(
        "\nNext steps:\n"
        f"  cd {_shown(target)}\n"
        "  python3.11 -m venv .venv && . .venv/bin/activate\n"
        f"  pip install -e '{_sdk_requirement()}'   # seedos-sdk is not on PyPI yet\n"
        "  pip install -e '.[test]'\n"
        "  pytest                                   # conformance suite + own tests\n"
        f"  seedos-connector dev {package}.connector:app\n"
        f"\nThen edit src/{package}/connector.py for your API; README.md covers the image,"
        " Kubernetes and `seedos-connector publish`."
    )


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _sdk_requirement() -> str:
    """Where to install seedos-sdk from: this SDK's source folder when it runs from one."""
    source = Path(__file__).resolve().parents[2]
    if (source / "pyproject.toml").is_file() and (source / "seedos_sdk").is_dir():
        return f"{source}[testing]"
    return "seedos-sdk[testing]"
