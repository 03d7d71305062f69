"""Structured JSON logs for connectors, with credentials kept out of every line."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from seedos_sdk.redaction import redact


def configure_logging(*, level: str = "INFO", service: str = "connector") -> None:
    """JSON lines on stdout (a console renderer on a terminal), secrets redacted."""
    level_no = logging.getLevelName(level.upper())
    level_no = level_no if isinstance(level_no, int) else logging.INFO

    def add_service(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    renderer: Any = (
        structlog.dev.ConsoleRenderer()
        if sys.stdout.isatty()
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
        logger_factory=structlog.WriteLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )
