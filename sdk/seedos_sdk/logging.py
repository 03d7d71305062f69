"""Structured JSON logs for connectors, with credentials kept out of every line."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any

import structlog

REDACTED = "[redacted]"
_SENSITIVE_KEY = re.compile(
    r"(authorization|password|secret|token|api[_-]?key|cookie|credential|private[_-]?key)", re.I
)
_TRIGGER = re.compile(r"(?i)bearer|basic|://|[?&]")
_VALUE_PATTERNS = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    (re.compile(r"(?i)(://[^:/@\s]+:)[^@\s]+@"), r"\1" + REDACTED + "@"),
    (
        re.compile(r"(?i)([?&](?:token|key|api_key|access_token|code|secret)=)[^&\s]+"),
        r"\1" + REDACTED,
    ),
]


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 5:
        return value
    if isinstance(value, str):
        if _TRIGGER.search(value) is None:
            return value
        for pattern, repl in _VALUE_PATTERNS:
            value = pattern.sub(repl, value)
        return value
    if isinstance(value, Mapping):
        return {k: REDACTED if isinstance(k, str) and _SENSITIVE_KEY.search(k)
                else _scrub(v, depth + 1) for k, v in value.items()}  # fmt: skip
    if isinstance(value, list | tuple):
        return [_scrub(v, depth + 1) for v in value]
    return value


def redact(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: drop values of sensitive keys, mask secrets inside strings."""
    for key, value in event_dict.items():
        if key != "event" and _SENSITIVE_KEY.search(key):
            event_dict[key] = REDACTED
        elif isinstance(value, str | Mapping | list | tuple):
            event_dict[key] = _scrub(value)
    return event_dict


def configure_logging(*, level: str = "INFO", service: str = "connector") -> None:
    """JSON lines on stderr (a console renderer on a terminal), secrets redacted."""
    level_no = logging.getLevelName(level.upper())
    level_no = level_no if isinstance(level_no, int) else logging.INFO

    def add_service(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    renderer: Any = (
        structlog.dev.ConsoleRenderer()
        if sys.stderr.isatty()
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_service,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
