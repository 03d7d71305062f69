"""What the bench scripts share to run the three services: free loopback ports, the
environment of a production-mode stack, and starting them all under a Supervisor."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from common.crypto import KeyRing
from seedos_cli.deployment_keys import ServiceKeys
from seedos_cli.supervisor import SERVICES, Supervisor
from seedos_sdk.testing import free_port

# production mode: the connectors the benches call listen on loopback, listed on purpose
LOOPBACK_NETWORKS = "127.0.0.0/8,::1/128"
BENCH_TOKEN_SECONDS = 3600  # the longest internal token the services are told to accept


def loopback_urls() -> tuple[dict[str, int], dict[str, str]]:
    """A free loopback port and its base URL for each service."""
    ports = {spec.name: free_port() for spec in SERVICES}
    return ports, {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}


def service_env(
    *, dsn: str, urls: dict[str, str], data_dir: Path, log_level: str, keys: ServiceKeys,
    **extra: str,
) -> dict[str, str]:  # fmt: skip
    """This process's environment without its ``SEEDOS_`` settings, and the services' settings
    for a production-mode stack on ``urls`` (``extra`` adds or overrides settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDOS_")}
    env.update(
        {
            "DATABASE_URL": dsn,
            "SEEDOS_ENV": "production",
            **keys.env(),
            # the benches call services directly with tokens that last the whole run
            "SEEDOS_INTERNAL_TOKEN_MAX_LIFETIME_SECONDS": str(BENCH_TOKEN_SECONDS),
            "SEEDOS_CREDENTIAL_KEYS": KeyRing.generate().to_json(),
            "SEEDOS_LOG_LEVEL": log_level,
            "SEEDOS_LOG_FORMAT": "json",
            "SEEDOS_DATA_DIR": str(data_dir),
            "SEEDOS_ENDPOINT_ALLOWED_NETWORKS": LOOPBACK_NETWORKS,
            "SEEDOS_GATEWAY_CONNECTOR_SERVICE_URL": urls["connector_service"],
            "SEEDOS_MARKETPLACE_CONNECTOR_SERVICE_URL": urls["connector_service"],
            "SEEDOS_GATEWAY_MARKETPLACE_SERVICE_URL": urls["marketplace_service"],
            **extra,
        }
    )
    return env


def start_all(supervisor: Supervisor, ports: dict[str, int], urls: dict[str, str]) -> None:
    """Start every service on its port and wait until all answer."""
    print("starting the services ...", file=sys.stderr)
    for spec in SERVICES:
        supervisor.start(spec, ports[spec.name])
    supervisor.wait_ready(urls, timeout=60)
