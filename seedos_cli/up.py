"""`seedos up`: database, migrations, demo data, then the services until Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import threading
from typing import Any

import httpx
import typer

from common import db, devsecrets, endpoints, migrate
from common.settings import CommonSettings, Environment
from gateway.api_keys import service as api_keys
from seedos_cli import demo
from seedos_cli import examples as example_apps
from seedos_cli import tls as local_tls
from seedos_cli.database import database
from seedos_cli.examples import EXAMPLE_PORTS
from seedos_cli.supervisor import SERVICES, Supervisor

SERVICE_NAMES = frozenset(spec.name for spec in SERVICES)
# where --tls may listen: its certificate names localhost, 127.0.0.1 and ::1
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0", "::")


class SuiteError(RuntimeError):
    """The suite could not start or stopped on its own; the message says why."""


def run_suite(
    settings: CommonSettings,
    *,
    host: str,
    ports: dict[str, int],
    examples: bool = True,
    tls: bool = False,
) -> None:
    """Everything ``make run`` does. ``ports`` names the three services, and with ``examples``
    also ``demo_crm``, ``crm_connector`` and ``generic_connector``. With ``tls`` the gateway
    serves HTTPS with a local certificate (seedos_cli/tls.py)."""
    if tls and host not in LOCAL_HOSTS:
        raise SuiteError(f"--tls makes a certificate for {', '.join(LOCAL_HOSTS[:3])} only:"
                         " listen on one of them (--host 127.0.0.1, or 0.0.0.0)")  # fmt: skip
    examples = examples and example_apps.available()
    if not examples:
        ports = {k: v for k, v in ports.items() if k not in EXAMPLE_PORTS}
    _ensure_ports_free(host, ports)  # before any data changes (the dev key rotates below)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}"
    urls = {name: f"{base}:{port}" for name, port in ports.items()}
    cert = local_tls.ensure(settings.data_dir.resolve()) if tls else None
    if cert is not None:
        urls["gateway"] = urls["gateway"].replace("http://", "https://", 1)
    with database(settings) as dsn:
        try:
            prepared = asyncio.run(_prepare(dsn, urls.get("generic_connector")))
        except migrate.MigrationError as exc:
            raise SuiteError(str(exc)) from None
        demo.warn_skipped(prepared["catalog_skipped"])
        env = _gateway_tls(_service_env(settings, dsn, urls), cert)
        supervisor = Supervisor(env, host=host)
        try:
            specs = list(SERVICES)
            if examples:
                crm_key = devsecrets.load_or_create(settings.data_dir)["demo_crm_api_key"]
                specs += example_apps.specs(settings.data_dir.resolve(), crm_key, urls)
                prepared["demo_crm"] = {"url": urls["demo_crm"], "api_key": crm_key}
            for spec in specs:
                supervisor.start(spec, ports[spec.name])
            supervisor.wait_ready(
                {s.name: urls[s.name] for s in specs if s.name in SERVICE_NAMES},
                verify=ssl.create_default_context(cafile=cert.ca_file) if cert else True,
            )
            if examples:
                supervisor.wait_ready({name: urls[name] for name in EXAMPLE_PORTS}, path="/healthz")
                asyncio.run(example_apps.register(dsn, urls, crm_key))
                prepared["demo_crm"]["install"] = asyncio.run(example_apps.install_demo(
                    urls, prepared["key"], crm_key,
                    verify=ssl.create_default_context(cafile=cert.ca_file) if cert else True,
                ))  # fmt: skip
            _banner(urls, prepared, embedded=not settings.dsn, dsn=dsn, cert=cert)
            while not stop.wait(0.5):
                if (name := supervisor.first_exited()) is not None:
                    raise SuiteError(f"{name} exited; stopping the suite")
        except (RuntimeError, TimeoutError, httpx.HTTPError) as exc:
            raise SuiteError(str(exc)) from None
        finally:
            typer.echo("stopping services ...", err=True)
            supervisor.stop()
            typer.echo("stopped", err=True)


def _ensure_ports_free(host: str, ports: dict[str, int]) -> None:
    for name, port in ports.items():
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                raise SuiteError(
                    f"port {port} ({name}) is in use: is the suite already running?"
                    " Stop it, or choose other ports (seedos up --help)."
                ) from None


async def _prepare(dsn: str, generic_url: str | None) -> dict[str, Any]:
    """Migrate, load the demo data and mint this run's dev key (revoking the last one)."""
    conn = await db.connect(dsn)
    try:
        await migrate.apply(conn)
        seeded = await demo.seed(conn, generic_url=generic_url)
        async with conn.transaction():
            key = await api_keys.rotate_dev_key(conn, tenant_id=seeded["tenant"]["id"])
        return {**seeded, "key": key["key"]}
    finally:
        await conn.close()


def _service_env(settings: CommonSettings, dsn: str, urls: dict[str, str]) -> dict[str, str]:
    local: dict[str, str] = {}
    if settings.env is Environment.development and endpoints.EGRESS_SETTING not in os.environ:
        # a laptop's OAuth provider stand-in runs on loopback: egress allows it here, by name
        local[endpoints.EGRESS_SETTING] = f"{endpoints.DEFAULT_EGRESS},{endpoints.LOOPBACK}"
    # where browsers reach the gateway (sign-in and OAuth redirects), unless set: this run's
    local.setdefault("SEEDOS_PUBLIC_URL", os.environ.get("SEEDOS_PUBLIC_URL", urls["gateway"]))
    # where published definitions run: this run's generic connector, when it has one
    generic = {}
    if "generic_connector" in urls:
        generic["SEEDOS_MARKETPLACE_GENERIC_CONNECTOR_URL"] = urls["generic_connector"]
    return {
        **os.environ,
        **local,
        "DATABASE_URL": dsn,
        "SEEDOS_DATA_DIR": str(settings.data_dir.resolve()),
        "SEEDOS_GATEWAY_CONNECTOR_SERVICE_URL": urls["connector_service"],
        "SEEDOS_MARKETPLACE_CONNECTOR_SERVICE_URL": urls["connector_service"],
        "SEEDOS_GATEWAY_MARKETPLACE_SERVICE_URL": urls["marketplace_service"],
        **generic,
    }


def _gateway_tls(env: dict[str, str], cert: local_tls.LocalCertificate | None) -> dict[str, str]:
    """The gateway's TLS files: the local certificate with --tls, and none without (whatever
    the environment says): it serves what the banner prints."""
    env = {k: v for k, v in env.items() if not k.startswith("SEEDOS_GATEWAY_TLS_")}
    if cert is not None:
        env["SEEDOS_GATEWAY_TLS_CERT_FILE"] = str(cert.cert_file)
        env["SEEDOS_GATEWAY_TLS_KEY_FILE"] = str(cert.key_file)
    return env


def _banner(
    urls: dict[str, str], prepared: dict[str, Any], *, embedded: bool, dsn: str,
    cert: local_tls.LocalCertificate | None = None,
) -> None:  # fmt: skip
    gw = urls["gateway"]
    curl = f"curl --cacert {cert.ca_file} " if cert else "curl "
    lines = [
        "",
        "SEED-OS Integration Layer is up",
        f"  gateway              {gw}",
        f"  dashboard            {gw}/  (development: continue as the demo admin)",
        f"  API docs             {gw}/docs",
        f"  gateway metrics      {gw}/metrics",
        f"  connector_service    {urls['connector_service']}/metrics",
        f"  marketplace_service  {urls['marketplace_service']}/metrics",
        f"  database             {'embedded PostgreSQL: ' + dsn if embedded else 'DATABASE_URL'}",
    ]
    if crm := prepared.get("demo_crm"):
        lines += [
            f"  demo CRM             {crm['url']}  (API key {crm['api_key']})",
            f"  example connector    {urls['crm_connector']}  (in the catalog as 'demo-crm',"
            f" {crm.get('install', 'not installed')})",
            f"  generic connector    {urls['generic_connector']}/definitions  (the demo CRM as a"
            " definition, in the catalog as 'demo-crm-declarative')",
        ]
    lines += [
        "",
        f"  demo tenant '{prepared['tenant']['slug']}',"
        f" {prepared['catalog_entries']} catalog entries",
        f"  dev API key (admin, replaced at every start): {prepared['key']}",
    ]
    if cert:
        lines += [
            "",
            "  HTTPS (TLS 1.3) with a certificate from a local CA made for this machine:",
            f"    {cert.ca_file}",
            "  trust it with curl --cacert, or add it to your browser's certificate authorities",
        ]
    lines += [
        "",
        f"  try: {curl}-H 'Authorization: Bearer {prepared['key']}' {gw}/api/v1/me",
        "",
        "Press Ctrl-C to stop.",
    ]
    typer.echo("\n".join(lines))
