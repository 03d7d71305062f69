"""localstripe (PyPI: ``pip install localstripe``), a fake Stripe no one here wrote, for testing a
Stripe connector: :func:`start_localstripe` runs it on a free loopback port.

Its own ``localstripe --port N`` listens on every interface and pickles its whole store to
/tmp/localstripe.pickle after every change (shared between runs, and quadratic in the objects
kept). Run as ``python -m seedos_sdk.testing.localstripe PORT``, this module serves the same
aiohttp app on 127.0.0.1 only, its store in memory only; nothing else of it is changed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from seedos_sdk.testing.process import Served, free_port, start_command

KEY = "sk_test_seedos"  # localstripe takes any key that starts with sk_


def start_localstripe(*, log_path: Path | None = None, timeout: float = 30.0) -> Served:
    """localstripe on a free loopback port, ready (stop it with ``.stop()``)."""
    port = free_port()
    # any answer means it listens: without a key, Stripe's paths answer 401
    return start_command([sys.executable, "-m", __name__, str(port)], port=port,
                         ready_path="/v1/customers", ready_statuses=(401,), timeout=timeout,
                         log_path=log_path, name="localstripe")  # fmt: skip


def main() -> None:
    from aiohttp import web
    from localstripe import resources, server

    resources.Store.dump_to_disk = lambda self: None  # in memory only (see above)
    web.run_app(server.app, host="127.0.0.1", port=int(sys.argv[1]), print=None)


if __name__ == "__main__":
    main()
