"""``seedos-connector``: scaffold, run, test and publish connectors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer

from seedos_sdk.cli import definitions as definition_files
from seedos_sdk.cli.new import new_command
from seedos_sdk.declarative.definition import digest_of
from seedos_sdk.testing.conformance import Target, run_checks
from seedos_sdk.testing.process import serve

app = typer.Typer(help="Build, test and publish SEED-OS connectors.", no_args_is_help=True)
app.command("new")(new_command)

AppOption = Annotated[
    str | None,
    typer.Option("--app", help="The connector's ASGI app, e.g. my_connector.connector:app"),
]


def _json_option(value: str | None, what: str) -> dict[str, Any]:
    if not value:
        return {}
    text = Path(value[1:]).read_text() if value.startswith("@") else value
    try:
        data = json.loads(text)
    except ValueError:
        raise typer.BadParameter(f"{what} must be JSON (or @file.json)") from None
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{what} must be a JSON object")
    return data


@app.command()
def dev(
    target: Annotated[
        str | None, typer.Argument(help="The ASGI app, e.g. my_connector.connector:app")
    ] = None,
    definition: Annotated[
        Path | None,
        typer.Option(
            help="A connector definition (connector.yaml) to serve instead", dir_okay=False
        ),
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            help="With --definition: a host whose addresses the egress rule lets"
            " through (e.g. 127.0.0.1 for an API on this machine); repeatable"
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface")] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option(help="Port (default 8010; 8014 with --definition)")
    ] = None,
) -> None:
    """Run a connector locally, reloading when its code changes; or serve a definition with
    the generic connector, reloading when the file changes."""
    if bool(target) == bool(definition):
        raise typer.BadParameter("give exactly one of an ASGI app or --definition")
    if allow_host and not definition:
        raise typer.BadParameter("--allow-host goes with --definition")
    if definition:
        from seedos_sdk.cli import dev as definition_dev

        definition_dev.run(definition, host=host, port=port or 8014, allow_hosts=allow_host or [])
        return
    import uvicorn

    sys.path.insert(0, str(Path.cwd()))
    uvicorn.run(
        str(target), host=host, port=port or 8010, reload=True, reload_dirs=[str(Path.cwd())]
    )


@app.command("test")
def test_command(
    target: AppOption = None,
    url: Annotated[str | None, typer.Option(help="A running connector's base URL")] = None,
    definition: Annotated[
        Path | None,
        typer.Option(
            help="A connector definition (connector.yaml), served by the generic"
            " connector for the run",
            dir_okay=False,
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            help="With --definition: the API to call instead of the definition's"
            " base_url; exactly its host's addresses are let through the egress rule"
        ),
    ] = None,
    config: Annotated[str | None, typer.Option(help="Install config as JSON or @file")] = None,
    credentials: Annotated[str | None, typer.Option(help="Credentials as JSON or @file")] = None,
    write_samples: Annotated[
        str | None, typer.Option(help='Records to write per stream: {"stream": [{...}]}')
    ] = None,
) -> None:
    """Run the conformance suite against a connector: started from --app, running at --url,
    or a definition served by the generic connector (--definition, with --base-url)."""
    if sum(map(bool, (target, url, definition))) != 1:
        raise typer.BadParameter("give exactly one of --app, --url or --definition")
    if base_url and not definition:
        raise typer.BadParameter("--base-url goes with --definition")
    cfg = _json_option(config, "--config")
    creds = _json_option(credentials, "--credentials")
    samples = _json_option(write_samples, "--write-samples")

    def run(base: str) -> dict[str, str | None]:
        t = Target(base, cfg, creds, samples)
        try:
            return run_checks(t)
        finally:
            t.client.close()

    if url:
        results = run(url.rstrip("/"))
    elif definition:
        with _served_definition(definition, base_url, cfg) as contract:
            results = run(contract)
    else:
        sys.path.insert(0, str(Path.cwd()))
        with serve(str(target), cwd=Path.cwd()) as served:
            results = run(served.url)
    failed = 0
    for name, problem in results.items():
        if problem is None:
            typer.secho(f"PASS  {name}", fg="green")
        else:
            failed += 1
            typer.secho(f"FAIL  {name}: {problem}", fg="red")
    typer.echo(f"{len(results) - failed} passed, {failed} failed")
    if definition and any("egress_refused" in (p or "") for p in results.values()):
        typer.echo("(the egress rule refused a call: an API on this machine or a private network"
                   " is reached with --base-url, which lets its host through)")  # fmt: skip
    raise typer.Exit(1 if failed else 0)


@contextmanager
def _served_definition(path: Path, base_url: str | None, config: dict[str, Any]) -> Iterator[str]:
    """The definition checked (exit 1 listing every problem), pointed at ``base_url`` and
    served by the generic connector; ``config`` gets ``base_url`` when the definition's config
    schema has one and it is not given."""
    text, checked = definition_files.read_definition(path)
    typer.echo(f"definition: {definition_files.describe(checked, path)}")
    if base_url:
        typer.echo(f"base URL: {base_url} (in place of the definition's"
                   f" {checked.raw['base_url']!r})")  # fmt: skip
        properties = checked.raw.get("config_schema", {}).get("properties", {})
        if "base_url" in properties and "base_url" not in config:
            config["base_url"] = base_url
        egress = definition_files.egress_allowing([("--base-url", base_url)])
        text, checked = definition_files.with_base_url(checked, base_url)
    else:
        egress = definition_files.egress_allowing([])
    typer.echo(f"egress: {egress.said}")
    with definition_files.served(text, checked, egress=egress) as contract:
        yield contract


@app.command()
def publish(
    gateway: Annotated[str, typer.Option(help="The SEED-OS gateway, e.g. https://seedos.example")],
    api_key: Annotated[
        str, typer.Option(help="An API key with the publisher role", envvar="SEEDOS_API_KEY")
    ],
    endpoint: Annotated[
        str | None, typer.Option(help="Where the deployed connector listens")
    ] = None,
    definition: Annotated[
        Path | None,
        typer.Option(
            help="A connector definition (connector.yaml) to publish instead: the"
            " platform's generic connector runs it",
            dir_okay=False,
        ),
    ] = None,
    category: Annotated[
        str | None, typer.Option(help="Marketplace category, e.g. crm (kept when absent)")
    ] = None,
    vendor: Annotated[str | None, typer.Option(help="Who makes the connected product")] = None,
) -> None:
    """Publish the connector at --endpoint (its manifest and URL), or the definition in
    --definition (its text), to the marketplace: a new entry, or a higher version of one your
    tenant published."""
    if bool(endpoint) == bool(definition):
        raise typer.BadParameter("give exactly one of --endpoint or --definition")
    extra = {k: v for k, v in (("category", category), ("vendor", vendor)) if v is not None}
    text = definition_files.read_text(definition) if definition else ""
    with httpx.Client(timeout=30) as client:
        if definition:
            target = gateway.rstrip("/") + "/api/v1/marketplace/definitions"
            body: dict[str, Any] = {"definition": text, **extra}
        else:
            endpoint = str(endpoint)
            target = gateway.rstrip("/") + "/api/v1/marketplace/connectors"
            body = {"manifest": _manifest(client, endpoint), "endpoint_url": endpoint, **extra}
        try:
            r = client.post(target, json=body, headers={"Authorization": f"Bearer {api_key}"})
        except httpx.HTTPError as exc:
            _fail(f"cannot reach the gateway at {gateway}: {exc}")
    answer = _json(r)
    if r.is_redirect:
        _fail(f"the gateway answered {r.status_code}, redirecting to"
              f" {r.headers.get('location', '(nowhere)')}; pass the address it should be"
              " reached at as --gateway; nothing was published")  # fmt: skip
    if r.status_code in (404, 405):
        _fail(f"the marketplace at {gateway} does not accept publishing"
              f" (POST {target} answered {r.status_code}); nothing was published")  # fmt: skip
    if r.status_code >= 400:
        _refused("publishing", r, answer)
    if not (r.is_success and isinstance(answer, dict)
            and {"slug", "version", "name"} <= answer.keys()):  # fmt: skip
        _fail(f"the gateway answered {r.status_code} with something that is not a catalog"
              f" entry: {r.text[:200]!r}; check --gateway")  # fmt: skip
    what = "a new entry" if r.status_code == 201 else "a new version"
    typer.echo(f"published {answer['slug']} {answer['version']} ({what}, {answer['name']!r})")
    if definition:
        typer.echo(f"new installs run the text with sha-256 {digest_of(text)} (on the"
                   " platform's generic connector; installs of other versions keep theirs until"
                   " upgraded)")  # fmt: skip


def _manifest(client: httpx.Client, endpoint: str) -> dict[str, Any]:
    """The deployed connector's manifest, or exit 1 saying what is wrong."""
    try:
        got = client.get(endpoint.rstrip("/") + "/manifest")
    except httpx.HTTPError as exc:
        _fail(f"cannot reach the connector at {endpoint}: {exc}")
    if got.status_code != 200:
        _fail(f"{endpoint}/manifest answered {got.status_code}")
    if not isinstance(manifest := _json(got), dict):
        _fail(f"{endpoint}/manifest answered something that is not a JSON object")
    return manifest


@app.command()
def withdraw(
    slug: Annotated[str, typer.Argument(help="Your catalog entry, e.g. acme-crm")],
    version: Annotated[str, typer.Argument(help="The published version to withdraw")],
    reason: Annotated[str, typer.Option(help="Shown to every install on it (one line)")],
    gateway: Annotated[str, typer.Option(help="The SEED-OS gateway, e.g. https://seedos.example")],
    api_key: Annotated[
        str, typer.Option(help="An API key with the publisher role", envvar="SEEDOS_API_KEY")
    ],
) -> None:
    """Withdraw a version you published: installs on it show update_required with --reason and
    are no longer called until their tenants upgrade them; new installs get the newest version
    not withdrawn. It cannot be undone: publish a fixed version instead."""
    url = f"{gateway.rstrip('/')}/api/v1/marketplace/connectors/{slug}/versions/{version}/withdraw"
    with httpx.Client(timeout=30) as client:
        try:
            r = client.post(
                url, json={"reason": reason}, headers={"Authorization": f"Bearer {api_key}"}
            )
        except httpx.HTTPError as exc:
            _fail(f"cannot reach the gateway at {gateway}: {exc}")
    answer = _json(r)
    if r.status_code >= 400 or r.is_redirect:
        _refused("withdrawing", r, answer)
    installs = answer.get("installs") if isinstance(answer, dict) else None
    typer.echo(f"withdrew {slug} {version} ({installs} install(s) on it must upgrade)")


def _refused(what: str, r: httpx.Response, answer: Any) -> NoReturn:
    """Every reason the marketplace gave for refusing, then exit 1."""
    problem = answer if isinstance(answer, dict) else {}
    detail = problem.get("detail") or r.text[:500] or r.reason_phrase
    typer.secho(f"{what} failed ({r.status_code}): {detail}", fg="red", err=True)
    errors = problem.get("errors")
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict):
            typer.secho(f"  {error.get('path', '')}: {error.get('message', '')}", err=True)
    raise typer.Exit(1)


def _json(response: httpx.Response) -> Any:
    """The body as JSON, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def _fail(message: str) -> NoReturn:
    typer.secho(message, fg="red", err=True)
    raise typer.Exit(1)


if __name__ == "__main__":
    app()
