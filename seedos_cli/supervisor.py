"""Run the three services as separate uvicorn processes and stop them cleanly.

Children run in their own session, so a terminal's Ctrl-C reaches only the supervisor, which
then stops them in order; on Linux they also get SIGTERM if the supervisor itself dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    app: str  # "module:factory", or "module:attribute" with factory=False
    factory: bool = True
    cwd: Path | None = None  # where the app's module is importable from
    env: Mapping[str, str] = field(default_factory=dict)  # on top of the supervisor's
    # run `python -m <module>` (which takes uvicorn's flags below) instead of uvicorn itself
    module: str | None = None


SERVICES = (
    ServiceSpec("connector_service", "connector_service.app:create_app"),
    ServiceSpec("marketplace_service", "marketplace_service.app:create_app"),
    # through gateway.serve, which serves TLS 1.3 only when a certificate is configured
    ServiceSpec("gateway", "gateway.app:create_app", module="gateway.serve"),
)


class Supervisor:
    def __init__(
        self, env: Mapping[str, str], *, host: str = "127.0.0.1", log_path: Path | None = None
    ) -> None:
        self.env = dict(env)
        self.host = host
        self.log_path = log_path  # where the children's output goes (default: inherited)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, spec: ServiceSpec, port: int) -> None:
        runner = (
            [spec.module]
            if spec.module
            else ["uvicorn", spec.app, *(["--factory"] if spec.factory else [])]
        )
        cmd = [
            sys.executable, "-m", *runner, "--host", self.host, "--port", str(port),
            "--no-access-log", "--timeout-graceful-shutdown", "5",
        ]  # fmt: skip
        output = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        self.procs[spec.name] = subprocess.Popen(
            cmd,
            env={**self.env, **spec.env},
            cwd=spec.cwd,
            stdout=output,
            stderr=output,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        if output is not None:
            output.close()  # the child holds its own descriptor

    def wait_ready(
        self,
        urls: Mapping[str, str],
        timeout: float = 60.0,
        path: str = "/readyz",
        *,
        verify: ssl.SSLContext | bool = True,  # what checks an https service's certificate
    ) -> None:
        """Poll each service's ``path`` until all answer 200; fail fast if one exits."""
        deadline = time.monotonic() + timeout
        pending = dict(urls)
        with httpx.Client(timeout=2.0, verify=verify) as client:
            while pending:
                for name in list(pending):
                    proc = self.procs[name]
                    if proc.poll() is not None:
                        raise RuntimeError(f"{name} exited with code {proc.returncode}")
                    try:
                        if client.get(pending[name] + path).status_code == 200:
                            del pending[name]
                    except httpx.HTTPError:
                        pass
                if not pending:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not ready after {timeout:g} s: {', '.join(pending)}")
                time.sleep(0.1)

    def first_exited(self) -> str | None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return name
        return None

    def stop(self, grace: float = 10.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
