"""Which Postgres the CLI talks to: ``DATABASE_URL`` when set, else the embedded server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from common import embedded
from common.settings import CommonSettings


@contextmanager
def database(settings: CommonSettings) -> Iterator[str]:
    """Yield a DSN. An embedded server this started is stopped again when the block ends
    (unless another process, such as a running ``seedos up``, still uses it)."""
    if settings.dsn:
        yield settings.dsn
        return
    server = embedded.start(settings.data_dir, cleanup_mode="stop")
    try:
        yield embedded.dsn(server)
    finally:
        server.cleanup()
