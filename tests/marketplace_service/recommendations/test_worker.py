"""The process that rebuilds the recommendation statistics ends with the service: stopped
gracefully or killed, no worker is left behind (each held ~70 MB)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_suite
from tests.support import make_tenant


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _workers(pid: int) -> list[int]:
    return [p for p in _children(pid) if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


def _first_workers(pid: int, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while not (found := _workers(pid)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return found


def _left_after(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("stop", ["terminate", "kill", "kill while it starts"])
async def test_no_worker_outlives_the_service(dsn, tmp_path, stop):
    running = start_suite(dsn, tmp_path / "services.log")
    try:
        service = running.supervisor.procs["marketplace_service"]
        if stop == "kill while it starts":
            # the worker is spawned at start and takes a second or two to import: the service
            # dies before the worker knows it had one
            workers = await asyncio.to_thread(_first_workers, service.pid, 10.0)
        else:
            t = await make_tenant(dsn)
            async with httpx.AsyncClient(base_url=running.gateway, headers=t.headers,
                                         timeout=60) as client:  # fmt: skip
                r = await client.get("/api/v1/marketplace/recommendations")
                assert r.status_code == 200, r.text  # the worker has built the statistics
            workers = _workers(service.pid)
        assert workers, "no worker process found"
        if stop.startswith("kill"):
            os.kill(service.pid, signal.SIGKILL)
        else:
            service.terminate()
        service.wait(timeout=15)
        left = await asyncio.to_thread(_left_after, workers, 5.0)
        assert not left, f"left behind after {stop}: {left}"
    finally:
        running.supervisor.stop()
