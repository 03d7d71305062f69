"""Why the server closes a sync WebSocket: the exceptions a connection ends with, and the close
code and reason each gives (README, "Close codes")."""

from __future__ import annotations

import structlog

from common.errors import SeedosError
from connector_service.manager.manager import Target
from connector_service.sync import service
from connector_service.sync.hub import (
    INTERNAL_ERROR,
    POLICY_VIOLATION,
    REFUSED_EDIT,
    SHARD_SPLIT,
    SPLIT_REASON,
    TRY_AGAIN_LATER,
    close_reason,
)
from connector_service.sync.layout import ShardSplit

log = structlog.get_logger(component="connector_service.sync.ws")

MESSAGE_TOO_BIG = 1009


class ProtocolViolation(Exception):
    """Closes the connection with 1008 and this reason."""


class TooBig(ProtocolViolation):
    """Closes the connection with 1009."""


class RefusedEdit(ProtocolViolation):
    """Closes the connection with 4422: an edit that builds on one refused before."""


def close_for(exc: BaseException, target: Target) -> tuple[int, str]:
    if isinstance(exc, TooBig):
        return MESSAGE_TOO_BIG, close_reason(str(exc))
    if isinstance(exc, RefusedEdit):
        return REFUSED_EDIT, close_reason(str(exc))
    if isinstance(exc, ProtocolViolation):
        return POLICY_VIOLATION, close_reason(str(exc))
    if isinstance(exc, ShardSplit):  # follow the records to the shards that hold them now
        return SHARD_SPLIT, SPLIT_REASON
    if isinstance(exc, service.TooManyRefusals):  # not applied: come back in a while
        return TRY_AGAIN_LATER, close_reason(f"{exc.code}: {exc.detail}")
    if isinstance(exc, SeedosError) and exc.status < 500:
        return POLICY_VIOLATION, close_reason(f"{exc.code}: {exc.detail or exc.title}")
    if isinstance(exc, SeedosError):  # the database is busy or down: the client may retry
        return TRY_AGAIN_LATER, exc.code
    log.error("sync_ws_failed", integration_id=str(target.id), error=type(exc).__name__,
              detail=str(exc)[:300])  # fmt: skip
    return INTERNAL_ERROR, "internal error"
