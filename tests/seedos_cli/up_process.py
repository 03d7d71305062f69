"""`seedos up` as a user runs it: a child process with a data folder of its own and none of
this process's SEEDOS_ settings, its output in a log file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


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
