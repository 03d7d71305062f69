"""Run an ASGI app as a real process on a free loopback port, and stop it afterwards."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path | None = None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, grace: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(
    app: str,
    *,
    factory: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    ready_path: str = "/healthz",
    timeout: float = 30.0,
    port: int | None = None,
    log_path: Path | None = None,
) -> Served:
    """Start ``uvicorn app`` (``module:attribute``) and wait until ``ready_path`` answers 200."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
           "--no-access-log"] + (["--factory"] if factory else [])  # fmt: skip
    return start_command(cmd, port=port, env=env, cwd=cwd, ready_path=ready_path,
                         timeout=timeout, log_path=log_path, name=app)  # fmt: skip


def start_command(
    cmd: list[str],
    *,
    port: int,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    ready_path: str = "/healthz",
    ready_statuses: Collection[int] = (200,),
    timeout: float = 30.0,
    log_path: Path | None = None,
    name: str | None = None,
) -> Served:
    """Start ``cmd``, a server that listens on 127.0.0.1:``port``, in its own session, and wait
    until ``ready_path`` answers one of ``ready_statuses``."""
    name = name or cmd[0]
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, env={**os.environ, **(env or {})}, cwd=cwd, stdout=out, stderr=out,
        start_new_session=True,
    )  # fmt: skip
    if log_path:
        out.close()
    served = Served(url=f"http://127.0.0.1:{port}", process=proc, log_path=log_path)
    deadline = time.monotonic() + timeout
    try:
        with httpx.Client(timeout=2.0) as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with code {proc.returncode}\n{served.logs()}"
                    )
                try:
                    if client.get(served.url + ready_path).status_code in ready_statuses:
                        return served
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not ready after {timeout:g} s\n{served.logs()}")
                time.sleep(0.05)
    except BaseException:  # Ctrl-C too: in a session of its own, the server never gets it
        served.stop()
        raise


@contextmanager
def serve(app: str, **kw: object) -> Iterator[Served]:
    """Context manager around :func:`start`: the process is stopped when the block ends."""
    served = start(app, **kw)  # type: ignore[arg-type]
    try:
        yield served
    finally:
        served.stop()
