"""Events the suite tells tenants about, and how they are published.

:func:`publish` runs in the caller's transaction: the event and its deliveries (one per enabled
endpoint of the tenant subscribed to its type, and for the types mailed to admins one per
admin) commit with the change they describe, or not at all. The delivery worker
(connector_service/outbound/worker.py) sends them afterwards, at least once, so nothing is lost
if the process dies after the commit. An event nobody is to hear of is not stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg

from connector_service.outbound import repository

SYNC_FINISHED = "sync.finished"
SYNC_FAILED = "sync.failed"
RECORDS_CHANGED = "records.changed"
INTEGRATION_STATUS_CHANGED = "integration.status_changed"
ALERT_OPENED = "alert.opened"
ALERT_RESOLVED = "alert.resolved"
DEAD_LETTER_ADDED = "dead_letter.added"
ENDPOINT_DISABLED = "webhook.endpoint_disabled"
# sent to one endpoint on request (POST /api/v1/webhooks/{id}/test), never subscribed to
TEST = "webhook.test"

EVENT_TYPES: tuple[str, ...] = (
    SYNC_FINISHED, SYNC_FAILED, RECORDS_CHANGED, INTEGRATION_STATUS_CHANGED, ALERT_OPENED,
    ALERT_RESOLVED, DEAD_LETTER_ADDED, ENDPOINT_DISABLED,
)  # fmt: skip
# what is also mailed to the tenant's admins (who have not opted out)
EMAIL_TYPES = frozenset({ALERT_OPENED, ENDPOINT_DISABLED})
# records.changed names at most this many keys per stream; the counts are always whole
MAX_KEYS = 100


async def publish(
    conn: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    type: str,
    data: Mapping[str, Any],
    integration_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Store the event ``type`` with ``data`` (JSON) and its deliveries, in the caller's
    transaction (the caller owns it). Returns the event's id, the ``webhook-id`` of every
    delivery of it. One statement; nothing is written when nobody subscribes."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    event_id = uuid.uuid4()
    body = dict(data)
    if integration_id is not None:
        body.setdefault("integration_id", str(integration_id))
    await repository.insert_event(
        conn, event_id=event_id, tenant_id=tenant_id, type=type, data=body,
        integration_id=integration_id, email=type in EMAIL_TYPES,
    )  # fmt: skip
    return event_id


async def publish_for_install(
    conn: asyncpg.Connection,
    *,
    integration_id: uuid.UUID,
    type: str,
    data: Mapping[str, Any],
) -> uuid.UUID:
    """:func:`publish` for a caller that knows the install but not its tenant (found in the
    same statement)."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    event_id = uuid.uuid4()
    await repository.insert_event_of_install(
        conn, event_id=event_id, integration_id=integration_id, type=type,
        data={**data, "integration_id": str(integration_id)}, email=type in EMAIL_TYPES,
    )  # fmt: skip
    return event_id


def records_changed(
    *,
    stream: str,
    origin: str,
    upserted: Iterable[str] = (),
    deleted: Iterable[str] = (),
    run_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """The data of one ``records.changed`` event: one stream's changes in one commit (``origin``
    ``pull``: from the external system; ``platform``: edits made on the platform), with counts
    and at most :data:`MAX_KEYS` keys of each kind."""
    up, gone = list(upserted), list(deleted)
    data: dict[str, Any] = {
        "stream": stream, "origin": origin, "upserted": len(up), "deleted": len(gone),
        "upserted_keys": up[:MAX_KEYS], "deleted_keys": gone[:MAX_KEYS],
        "truncated": len(up) > MAX_KEYS or len(gone) > MAX_KEYS,
    }  # fmt: skip
    if run_id is not None:
        data["run_id"] = str(run_id)
    return data
