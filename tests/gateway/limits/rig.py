"""Rigs for the limit tests: gateway processes with limits of their own in front of the probe
upstream (tests/gateway/limits/upstream.py, standing for both services), and a Redis server
(Debian's redis-server, which `make test` installs) on a free loopback port."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from seedos_cli.supervisor import SERVICES, ServiceSpec, Supervisor
from tests.conftest import suite_env
from tests.support import free_port

GATEWAY = next(spec for spec in SERVICES if spec.name == "gateway")
UPSTREAM = ServiceSpec("upstream", "tests.gateway.limits.upstream:create_app")


@dataclass
class Rig:
    gateways: list[str]
    supervisor: Supervisor

    @property
    def gateway(self) -> str:
        return self.gateways[0]


@contextmanager
def gateways(
    dsn: str, log_path: Path, *, limits: dict[str, Any], replicas: int = 1, **env: str
) -> Iterator[Rig]:
    """``replicas`` gateways with ``SEEDOS_GATEWAY_RATE_LIMITS`` = ``limits`` (and ``env``)."""
    upstream = free_port()
    ports = [free_port() for _ in range(replicas)]
    names = {"gateway": ports[0], "connector_service": upstream, "marketplace_service": upstream}
    sup = Supervisor(
        suite_env(dsn, None, names, SEEDOS_GATEWAY_RATE_LIMITS=json.dumps(limits), **env),
        log_path=log_path,
    )
    urls = {"upstream": f"http://127.0.0.1:{upstream}"}
    try:
        sup.start(UPSTREAM, upstream)
        for i, port in enumerate(ports):
            spec = dataclasses.replace(GATEWAY, name=f"gateway{i}")
            sup.start(spec, port)
            urls[spec.name] = f"http://127.0.0.1:{port}"
        sup.wait_ready(urls)
        yield Rig([f"http://127.0.0.1:{p}" for p in ports], sup)
    finally:
        sup.stop()


class RedisServer:
    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("no redis-server: `make test` installs Debian's redis-server")
        self.binary, self.folder = binary, folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
            finally:
                client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def keys(self, pattern: str) -> list[bytes]:
        client = redis.Redis.from_url(self.url, socket_timeout=0.5)
        try:
            return client.keys(pattern)
        finally:
            client.close()
