"""Fixtures running the demo CRM (and the test authorization server) as real processes."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

SDK_DIR = Path(__file__).resolve().parents[1]
OIDC_DIR = SDK_DIR / "tests" / "oidc"
API_KEY = "test-crm-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class CrmServer:
    """One demo CRM process on a free loopback port; ``start`` and ``stop`` may repeat."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    api_key: str = API_KEY
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def client(self, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        """An HTTP client sending ``headers``; by default authenticated with the API key."""
        if headers is None:
            headers = {"X-API-Key": self.api_key}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=60)

    def admin(self, method: str, path: str, *, body: object = None) -> httpx.Response:
        """A blocking call to ``/admin``, for fixtures."""
        response = httpx.request(
            method, self.base_url + path, headers={"X-API-Key": self.api_key}, json=body, timeout=60
        )
        response.raise_for_status()
        return response

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEMO_CRM_")}
        env |= {"DEMO_CRM_DATA_DIR": str(self.data_dir), "DEMO_CRM_API_KEYS": self.api_key}
        env |= self.env
        for _attempt in range(3):
            self.port = free_port()
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [
                        *(sys.executable, "-m", "uvicorn", "examples.demo_crm.app:create_app"),
                        *("--factory", "--host", "127.0.0.1", "--port", str(self.port)),
                        *("--log-level", "warning"),
                    ],
                    cwd=SDK_DIR,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_healthy(deadline=time.monotonic() + 30):
                return
        raise RuntimeError(f"demo CRM did not start:\n{self.log_path.read_text()[-3000:]}")

    def _wait_healthy(self, *, deadline: float) -> bool:
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # exited, e.g. the port was taken meanwhile: try another
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # polling interval while waiting for the port to open
        _stop(self.process)
        raise RuntimeError(f"demo CRM not healthy in time:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            self.process = None


@pytest.fixture(scope="module")
def start_crm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., CrmServer]]:
    """Start demo CRM processes (``start_crm(data_dir=..., env={...})``); all stop at the end
    of the module."""
    servers: list[CrmServer] = []

    def start(*, data_dir: Path | None = None, env: dict[str, str] | None = None) -> CrmServer:
        server = CrmServer(data_dir or tmp_path_factory.mktemp("crm") / "data", env or {})
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def crm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrmServer]:
    server = CrmServer(tmp_path_factory.mktemp("crm") / "data")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def crm(crm_server: CrmServer) -> CrmServer:
    """The module's demo CRM, emptied (records, faults, statistics) for this test."""
    crm_server.admin("POST", "/admin/reset")
    return crm_server


@dataclass
class AuthServer:
    """The oidc-provider test authorization server (tests/oidc/server.mjs)."""

    process: subprocess.Popen[bytes]
    endpoints: dict[str, str]

    def token(self, *, scope: str, client: tuple[str, str] | None = None) -> str:
        """An access token from the client credentials grant."""
        response = httpx.post(
            self.endpoints["token_endpoint"],
            data={"grant_type": "client_credentials", "scope": scope},
            auth=client or ("crm-connector", "crm-connector-secret"),
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def revoke(self, token: str) -> None:
        response = httpx.post(
            self.endpoints["revocation_endpoint"],
            data={"token": token},
            auth=("crm-connector", "crm-connector-secret"),
        )
        response.raise_for_status()

    def stop(self) -> None:
        _stop(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture(scope="module")
def start_auth_server() -> Iterator[Callable[[], AuthServer]]:
    """Start test authorization servers; all stop at the end of the module.

    Skips when Node or the npm packages of tests/oidc are missing.
    """
    node = shutil.which("node")
    if node is None or not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.skip(f"needs node and `npm ci --prefix {OIDC_DIR}`")
    servers: list[AuthServer] = []

    def start() -> AuthServer:
        process = subprocess.Popen(
            [node, "server.mjs"], cwd=OIDC_DIR, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        server = AuthServer(process, {})
        servers.append(server)
        server.endpoints = _read_endpoints(process, deadline=time.monotonic() + 30)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def auth_server(start_auth_server: Callable[[], AuthServer]) -> AuthServer:
    return start_auth_server()


def _read_endpoints(process: subprocess.Popen[bytes], *, deadline: float) -> dict[str, str]:
    assert process.stdout is not None
    while time.monotonic() < deadline and process.poll() is None:
        ready, _, _ = select.select([process.stdout], [], [], deadline - time.monotonic())
        if ready:
            return json.loads(process.stdout.readline())
    raise RuntimeError("the test authorization server did not start")
