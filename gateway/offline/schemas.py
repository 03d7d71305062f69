"""What ``POST /api/v1/integrations/sync-offline`` takes and answers."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

MAX_ITEMS = 500


class OfflineItem(BaseModel):
    client_id: str = Field(
        pattern=r"^[A-Za-z0-9_-]{8,64}$",
        description="The queue's client: a random id the browser (or app) keeps",
    )
    seq: int = Field(ge=1, le=2**53, description="The client's sequence number, from 1 up")
    idempotency_key: str = Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")
    client_ts: AwareDatetime = Field(description="When the person did it, by the client's clock")
    method: Literal["POST", "PATCH", "PUT", "DELETE"]
    path: str = Field(min_length=1, max_length=500, description="One of the allowed operations")
    body: Any = None
    if_match: str | None = Field(None, max_length=200, description="The ETag the person saw")


class OfflineBatch(BaseModel):
    items: list[OfflineItem] = Field(min_length=1, max_length=MAX_ITEMS)


class Outcome(StrEnum):
    applied = "applied"  # done now; `answer` is the API's answer
    duplicate = "duplicate"  # done before (same key, or a sequence number already completed)
    rejected = "rejected"  # a permanent 4xx: the item is complete, `answer` is the problem
    conflict = "conflict"  # its precondition failed: `answer` holds the current state
    retry_later = "retry_later"  # a transient failure: the batch stopped here
    out_of_sequence = "out_of_sequence"  # an earlier number is missing: held, not run
    not_attempted = "not_attempted"  # after the batch stopped


class ItemResult(BaseModel):
    client_id: str
    seq: int
    idempotency_key: str
    outcome: Outcome
    status: int | None = Field(None, description="The API's HTTP status for this item")
    answer: Any = Field(None, description="The API's answer (a problem for 4xx)")
    expected_seq: int | None = Field(None, description="With out_of_sequence: what comes next")


class BatchResult(BaseModel):
    results: list[ItemResult]
    retry_after: int | None = Field(None, description="Seconds, when the batch stopped early")
