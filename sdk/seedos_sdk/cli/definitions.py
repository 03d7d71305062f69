"""Connector definitions on the command line: read and checked (every problem printed), pointed
at a base URL, let through the egress rule to exactly one host, and served by the generic
connector as a real process, for ``seedos-connector test``, ``dev`` and ``publish``."""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import typer
import yaml

from seedos_sdk.declarative import Definition, DefinitionError, load
from seedos_sdk.egress import DEFAULT_EGRESS, EGRESS_SETTING, AddressNotAllowed, egress_policy
from seedos_sdk.testing.process import start

GENERIC_CONNECTOR = "seedos_sdk.declarative.server:app_factory"


def read_text(path: Path) -> str:
    """The file's text exactly as its bytes hold it (no newline translation, so its digest is
    the file's), or exit 1 saying why it cannot be read."""
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        fail(f"{path} is not UTF-8 text")


def read_definition(path: Path) -> tuple[str, Definition]:
    """The definition in ``path`` and its text, checked; exit 1 listing every problem."""
    text = read_text(path)
    try:
        return text, load(text)
    except DefinitionError as exc:
        print_problems(path, exc.problems)
        raise typer.Exit(1) from None


def print_problems(path: Path, problems: Sequence[str], *, err: bool = True) -> None:
    typer.secho(f"{path} has {len(problems)} problem(s):", fg="red", err=err)
    for problem in problems:
        typer.echo(f"  - {problem}", err=err)


def describe(definition: Definition, path: Path) -> str:
    return (f"{definition.name} {definition.version} ({path.name},"
            f" sha-256 {definition.digest[:12]}...)")  # fmt: skip


def contract_path(definition: Definition) -> str:
    """Where the generic connector serves it: the path an install calls."""
    return f"/definitions/{definition.name}/{definition.version}/{definition.digest}"


class _PlainDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # the loader refuses anchors and aliases: never write any


def with_base_url(definition: Definition, url: str) -> tuple[str, Definition]:
    """A copy of the definition whose ``base_url`` is ``url``, as text and checked."""
    raw = copy.deepcopy(definition.raw)
    raw["base_url"] = url
    text = yaml.dump(raw, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True)
    try:
        return text, load(text)
    except DefinitionError as exc:
        print_problems(Path("--base-url"), exc.problems)
        raise typer.Exit(1) from None


@dataclass(frozen=True)
class Egress:
    """The egress rule for a generic connector started here: the environment's (or the
    default), with the addresses of the hosts named on the command line added."""

    value: str  # for SEEDOS_EGRESS_ALLOWED_NETWORKS
    said: str  # what it lets through, for the output


def egress_allowing(urls: Sequence[tuple[str, str]]) -> Egress:
    """The rule with exactly the addresses of each ``(what, url)``'s host added (what: where
    it came from, e.g. "--base-url"). Exit 1 when a URL cannot be called or does not resolve,
    or when the environment's rule is not valid."""
    base = os.environ.get(EGRESS_SETTING) or DEFAULT_EGRESS
    try:
        rule = egress_policy({EGRESS_SETTING: base})
    except ValueError as exc:
        fail(str(exc))
    added: list[str] = []
    said: list[str] = []
    for what, url in urls:
        try:
            host, port = rule.check_syntax(url)
            addresses = asyncio.run(rule.resolve(host, port))
        except AddressNotAllowed as exc:  # HostNotResolved included
            fail(f"{what} {url}: {exc}")
        new = [str(ipaddress.ip_network(a)) for a in addresses if not rule.address_allowed(a)]
        added += [n for n in new if n not in added]
        shown = ", ".join(str(a) for a in addresses)
        if new:
            said.append(f"{shown} (the {what} host {host!r}) let through")
        else:
            said.append(f"{shown} (the {what} host {host!r}) already allowed")
    default = "" if os.environ.get(EGRESS_SETTING) else " (the default: public addresses only)"
    rest = f"{'everything else ' if said else ''}as {EGRESS_SETTING}={base}{default} allows"
    return Egress(",".join([*added, base]), "; ".join([*said, rest]))


@contextmanager
def served(text: str, definition: Definition, *, egress: Egress) -> Iterator[str]:
    """The generic connector, a real process on a free loopback port, serving ``text`` alone
    under ``egress``: yields the URL of its contract. Stopped when the block ends."""
    with tempfile.TemporaryDirectory(prefix="seedos-definition-") as folder:
        (Path(folder) / "connector.yaml").write_text(text, encoding="utf-8")
        env = {"SEEDOS_DEFINITIONS": folder, "SEEDOS_DEFINITIONS_SOURCE": "",
               EGRESS_SETTING: egress.value}  # fmt: skip
        try:
            process = start(GENERIC_CONNECTOR, factory=True, env=env,
                            log_path=Path(folder) / "generic.log")  # fmt: skip
        except (RuntimeError, TimeoutError) as exc:
            fail(f"the generic connector did not start: {exc}")
        try:
            yield process.url + contract_path(definition)
        finally:
            process.stop()


def fail(message: str) -> NoReturn:
    typer.secho(message, fg="red", err=True)
    raise typer.Exit(1)
