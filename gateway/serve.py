"""``python -m gateway.serve``: the gateway under uvicorn, over HTTPS with TLS 1.3 only when
``SEEDOS_GATEWAY_TLS_CERT_FILE`` and ``SEEDOS_GATEWAY_TLS_KEY_FILE`` are set, else plain HTTP.

uvicorn's command line cannot set a minimum TLS version (``--ssl-version`` picks a protocol
constant, and ``--ssl-ciphers`` does not reach TLS 1.3), so this builds the server itself and
hands uvicorn our context (``ssl_context_factory``). It takes the uvicorn flags the suite uses.
Settings are read once, here: a wrong one stops the start with its message (never its value).
"""

from __future__ import annotations

import argparse
import re
import sys
from functools import partial

import uvicorn
from pydantic import ValidationError
from pydantic_settings import SettingsError

from gateway.app import create_app
from gateway.settings import GatewaySettings

STARTUP_FAILURE = 3  # uvicorn's exit code when the server could not start


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m gateway.serve", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=8000)
    # the gateway logs one line per request itself
    parser.add_argument("--no-access-log", dest="access_log", action="store_false")
    parser.add_argument("--timeout-graceful-shutdown", type=int, default=None, metavar="SECONDS")
    return parser.parse_args(argv)


def _setting(field: str) -> str:
    """The environment variable a settings field is read from."""
    info = GatewaySettings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, str):
        return alias
    return (GatewaySettings.model_config.get("env_prefix") or "") + field.upper()


def _problems(exc: ValidationError) -> str:
    """What is wrong, by environment variable, without the values given (a secret may be
    among them)."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = [str(part) for part in error["loc"]]
        where = ".".join([_setting(loc[0]), *loc[1:]]) if loc else ""
        lines.append(f"  {where + ': ' if where else ''}{error['msg']}")
    return "\n".join(lines)


def _unparsable(exc: SettingsError) -> str:
    """pydantic-settings could not parse a JSON setting: say which, not its value."""
    found = re.search(r'field "([^"]+)"', str(exc))
    name = _setting(found[1]) if found else "a setting"
    return f"  {name}: not valid JSON"


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    try:
        settings = GatewaySettings()
    except ValidationError as exc:
        sys.exit(f"gateway: cannot start, settings refused:\n{_problems(exc)}")
    except SettingsError as exc:
        sys.exit(f"gateway: cannot start, settings refused:\n{_unparsable(exc)}")
    context = settings.tls_context()
    config = uvicorn.Config(
        partial(create_app, settings),
        factory=True,  # made after uvicorn's logging set-up, which the app's then replaces
        host=args.host,
        port=args.port,
        access_log=args.access_log,
        timeout_graceful_shutdown=args.timeout_graceful_shutdown,
        ssl_context_factory=(lambda _config, _default: context) if context else None,
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()
