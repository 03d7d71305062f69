"""`seedos up` as a user runs it: a child process with a data folder of its own and none of
this process's SEEDOS_ settings, its output in a log file."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

DEV_KEY = re.compile(r"dev API key \(admin.*\): (sk_seedos_\S+)")  # in the banner


def start_up(data_dir: Path, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SEEDOS_") and k != "DATABASE_URL"
    }
    env |= {"SEEDOS_DATA_DIR": str(data_dir)}
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "seedos_cli.main", "up", *args],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip


def wait_for_log(
    proc: subprocess.Popen[bytes], log: Path, pattern: re.Pattern[str], timeout: float = 120
) -> re.Match[str]:
    """The first match of ``pattern`` in the log (its ``string`` is the whole log then), once
    there is one; fails when `seedos up` exits or ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if found := pattern.search(text):
            return found
        assert proc.poll() is None, text
        time.sleep(0.2)
    raise AssertionError("no banner:\n" + log.read_text(errors="replace"))


def stop_up(proc: subprocess.Popen[bytes]) -> int:
    """Stop `seedos up` as Ctrl-C does; its exit code."""
    proc.send_signal(signal.SIGINT)
    return proc.wait(timeout=60)
