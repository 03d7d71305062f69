"""Keeping secrets out of log lines: one structlog processor, shared by connectors and the
SEED-OS services.

Values of sensitive keys (``authorization``, ``password``, ``api_key``, ``token`` ...) are
dropped; inside other strings, bearer and basic credentials, ``sk_`` keys, JWTs, passwords in
URLs and ``password=``/``token=`` pairs are masked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

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


def scrub(value: Any, depth: int = 0) -> Any:
    """``value`` with secrets masked (strings) or dropped (values of sensitive keys)."""
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
            k: (REDACTED if isinstance(k, str) and _sensitive_key(k) else scrub(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(scrub(v, depth + 1) for v in value)
    return value


def redact(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: never let a secret reach a log line."""
    for key, value in event_dict.items():
        if key != "event" and _sensitive_key(key):
            event_dict[key] = REDACTED
        elif isinstance(value, str | Mapping | list | tuple):
            event_dict[key] = scrub(value)
    return event_dict
