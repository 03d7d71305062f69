"""Session fixtures: one real PostgreSQL (embedded, or DATABASE_URL), migrations applied once,
and the three services as real uvicorn processes talking HTTP; and per test module, the
stand-ins of third-party APIs (localstripe)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from common import db, migrate
from common.crypto import KeyRing
from seedos_cli import demo
from seedos_cli.deployment_keys import ServiceKeys
from seedos_cli.supervisor import SERVICES, Supervisor
from seedos_sdk.testing.localstripe import start_localstripe
from tests.support import connected, create_database, drop_database, embedded_cluster, free_port

ROOT = Path(__file__).resolve().parents[1]
TEST_KEY_RING = KeyRing.generate().to_json()
# The provider tests.people's people signed in with (never called: their sessions are made in
# the database); a platform provider, so its verified emails count everywhere.
TEST_PROVIDERS = json.dumps(
    {"test": {"issuer": "https://idp.test.invalid", "client_id": "seedos-tests"}}
)


@pytest.fixture(scope="session")
def admin_dsn() -> Iterator[str]:
    """A server to create test databases on: DATABASE_URL's, or a throwaway embedded one."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    with embedded_cluster("seedos-test-pg-") as url:
        yield url


@pytest.fixture(scope="session")
async def dsn(admin_dsn: str) -> AsyncIterator[str]:
    """A fresh database for this session with every migration and the demo data."""
    url = await create_database(admin_dsn)
    conn = await db.connect(url)
    try:
        await migrate.apply(conn)
        await demo.seed(conn)
    finally:
        await conn.close()
    yield url
    await drop_database(admin_dsn, url)


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """One connection to the session's database, outside any transaction."""
    async with connected(dsn) as connection:
        yield connection


@pytest.fixture
async def database(dsn: str) -> AsyncIterator[db.Database]:
    """A pool on the session's database, behind the services' gate, for in-process tests."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4, init=db._init_connection)
    try:
        yield db.Database(pool, acquire_timeout=10)
    finally:
        await pool.close()


@dataclass
class Suite:
    gateway: str
    connector_service: str
    marketplace_service: str
    keys: ServiceKeys  # the services' internal-token keys
    supervisor: Supervisor
    ports: dict[str, int]
    log_path: Path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


def suite_env(
    dsn: str, keys: ServiceKeys | None, ports: dict[str, int], **extra: str
) -> dict[str, str]:
    """The services' environment; ``keys`` None: fresh internal-token keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDOS_")}
    return {
        **env,
        "DATABASE_URL": dsn,
        "SEEDOS_ENV": "production",
        **(keys or ServiceKeys.generate()).env(),
        "SEEDOS_CREDENTIAL_KEYS": TEST_KEY_RING,
        "SEEDOS_LOG_FORMAT": "json",
        # production mode: loopback, where the tests' connectors listen, is listed explicitly
        # (egress stays at its default, public addresses only: no test calls out through it)
        "SEEDOS_ENDPOINT_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
        "SEEDOS_GATEWAY_OIDC_PROVIDERS": TEST_PROVIDERS,
        # where browsers reach the gateway: redirect URIs, the origin CSRF checks compare with
        **(
            {"SEEDOS_PUBLIC_URL": f"http://127.0.0.1:{ports['gateway']}"}
            if "gateway" in ports
            else {}
        ),
        "SEEDOS_GATEWAY_CONNECTOR_SERVICE_URL": f"http://127.0.0.1:{ports['connector_service']}",
        "SEEDOS_MARKETPLACE_CONNECTOR_SERVICE_URL": f"http://127.0.0.1:{ports['connector_service']}",
        "SEEDOS_GATEWAY_MARKETPLACE_SERVICE_URL": f"http://127.0.0.1:{ports['marketplace_service']}",
        # Every suite shares the database, and so the outbound queue: a suite's delivery loop
        # would take other tests' deliveries and judge them by its own egress rule. Off unless
        # a test delivers (and then by one rule at a time).
        "SEEDOS_CONNECTOR_OUTBOUND_DELIVER": "false",
        # Likewise every suite's alert loop judges every install: once at its start, then hourly,
        # so that a test's own evaluations (tests/connector_service/test_alerts.py) are alone.
        "SEEDOS_CONNECTOR_ALERTS_EVALUATE_SECONDS": "3600",
        **extra,
    }


def start_suite(
    dsn: str, log_path: Path, *, ports: dict[str, int] | None = None, **extra: str
) -> Suite:
    """Start the three services; ``ports`` (by service name) when a test must know them before,
    e.g. to put the gateway's address in the services' environment."""
    ports = ports or {spec.name: free_port() for spec in SERVICES}
    keys = ServiceKeys.generate()
    supervisor = Supervisor(suite_env(dsn, keys, ports, **extra), log_path=log_path)
    for spec in SERVICES:
        supervisor.start(spec, ports[spec.name])
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    try:
        supervisor.wait_ready(urls, timeout=60)
    except BaseException:
        supervisor.stop()
        raise
    return Suite(
        gateway=urls["gateway"],
        connector_service=urls["connector_service"],
        marketplace_service=urls["marketplace_service"],
        keys=keys,
        supervisor=supervisor,
        ports=ports,
        log_path=log_path,
    )


@pytest.fixture(scope="session")
def suite(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    """The three services as real processes on free loopback ports, in production mode."""
    running = start_suite(dsn, tmp_path_factory.mktemp("suite") / "services.log")
    try:
        yield running
    finally:
        running.supervisor.stop()


@pytest.fixture(scope="module")
def stripe_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """localstripe (a fake Stripe from PyPI) on a free loopback port, for one test module."""
    served = start_localstripe(log_path=tmp_path_factory.mktemp("localstripe") / "log")
    try:
        yield served.url
    finally:
        served.stop()
