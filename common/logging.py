"""structlog configuration: JSON in production, console on a terminal, secrets redacted.

Every log line passes through :func:`redact`, which drops the values of sensitive keys and
masks anything shaped like a bearer token, an API key or a connection-string password.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any

import structlog

REDACTED = "[redacted]"
_SENSITIVE_KEY = re.compile(
    r"(authorization|password|passwd|secret|token|api[_-]?key|cookie|credential|private[_-]?key"
    r"|client[_-]?secret|dsn|database_url|ticket)",
    re.IGNORECASE,
)
_SENSITIVE_VALUE = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    (re.compile(r"\bsk_[A-Za-z0-9_-]{8,}"), REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"(?i)(://[^:/@\s]+:)\S+@"), r"\1" + REDACTED + "@"),  # greedy: '@' in passwords
    (re.compile(r"(?i)\b(password|passwd|pwd|secret|token)=('[^']*'|\S+)"), r"\1=" + REDACTED),
    (
        re.compile(r"(?i)([?&](?:ticket|token|key|code|state|access_token)=)[^&\s]+"),
        r"\1" + REDACTED,
    ),
]


# One cheap pass decides whether a string needs the full set of patterns: on the request path
# almost no value does, and running every pattern over every field cost more than the request.
_TRIGGER = re.compile(r"(?i)bearer|basic|sk_|eyJ|://|[?&]|password|passwd|pwd|secret|token")
_key_verdicts: dict[str, bool] = {}


def _sensitive_key(key: str) -> bool:
    verdict = _key_verdicts.get(key)
    if verdict is None:
        verdict = bool(_SENSITIVE_KEY.search(key))
        if len(_key_verdicts) < 4096:
            _key_verdicts[key] = verdict
    return verdict


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 6:
        return value
    if isinstance(value, str):
        if _TRIGGER.search(value) is None:
            return value
        for pattern, repl in _SENSITIVE_VALUE:
            value = pattern.sub(repl, value)
        return value
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and _sensitive_key(k) else _scrub(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v, depth + 1) for v in value)
    return value


def redact(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: never let a secret reach a log line."""
    for key, value in event_dict.items():
        if key != "event" and _sensitive_key(key):
            event_dict[key] = REDACTED
        elif isinstance(value, str | Mapping | list | tuple):
            event_dict[key] = _scrub(value)
    return event_dict


def configure_logging(*, level: str = "INFO", fmt: str = "auto", service: str = "seedos") -> None:
    """Configure structlog, and route the standard library's logging (uvicorn's) through the same
    processors and renderer.

    Our own lines take structlog's fast path (a level-filtering bound logger writing straight to
    stderr): on the request path the stdlib route cost about 120 us a line on this machine.
    """
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    level_no = logging.getLevelName(level.upper())
    if not isinstance(level_no, int):
        raise ValueError(f"unknown log level {level!r}")

    def add_service(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_service,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_no)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # One summary line per request comes from our middleware; uvicorn's access log would
    # repeat it with the raw query string.
    logging.getLogger("uvicorn.access").disabled = True
