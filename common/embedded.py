"""The embedded PostgreSQL used when ``DATABASE_URL`` is not set (the ``pgserver`` package).

Its data folder lives inside the checkout (``.seedos/pgdata`` by default, git-ignored) and
survives restarts. pgserver listens on a Unix socket in that folder; the DSN says where.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


def start(data_dir: Path, *, cleanup_mode: str | None = "stop") -> Any:
    """Start (or join) the embedded server for ``data_dir``; returns the pgserver handle.

    ``cleanup_mode="stop"`` stops the server when the last process using it exits;
    ``"delete"`` also removes the data (tests); ``None`` leaves it running.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        import pgserver

        pgdata = Path(data_dir).resolve() / "pgdata"
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        return pgserver.get_server(pgdata, cleanup_mode=cleanup_mode)


def dsn(server: Any) -> str:
    return server.get_uri()
