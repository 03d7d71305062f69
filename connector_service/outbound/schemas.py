"""What the webhooks API takes and answers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connector_service.outbound.events import EVENT_TYPES


def _types(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    unknown = sorted(set(value) - set(EVENT_TYPES))
    if unknown:
        raise ValueError(f"unknown event types {unknown}; known: {list(EVENT_TYPES)}")
    return list(dict.fromkeys(value))


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000, description="Where events are POSTed")
    event_types: list[str] = Field(min_length=1, max_length=len(EVENT_TYPES))
    description: str = Field("", max_length=500)

    _check_types = field_validator("event_types")(_types)


class EndpointChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, min_length=1, max_length=2000)
    event_types: list[str] | None = Field(None, min_length=1, max_length=len(EVENT_TYPES))
    description: str | None = Field(None, max_length=500)
    enabled: bool | None = None

    _check_types = field_validator("event_types")(_types)


class EndpointOut(BaseModel):
    id: uuid.UUID
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    failing_since: datetime | None
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> EndpointOut:
        return cls.model_validate(dict(row))


class EndpointCreated(EndpointOut):
    secret: str = Field(description="The signing secret (whsec_...), shown this once")


class SecretOut(BaseModel):
    created_at: datetime
    expires_at: datetime | None = Field(description="null: the current secret")


class EndpointDetail(EndpointOut):
    secrets: list[SecretOut]


class EndpointList(BaseModel):
    items: list[EndpointOut]
    event_types: list[str] = Field(description="Every event type one may subscribe to")


class Rotated(BaseModel):
    secret: str = Field(description="The new signing secret, shown this once")
    previous_expires_at: datetime | None = Field(
        description="Until when the previous secret signs too"
    )


class AttemptOut(BaseModel):
    at: datetime
    ok: bool
    status: int | None
    duration_ms: float
    response: str | None = Field(description="At most 1 KiB of the answer")
    error: str | None


class DeliveryOut(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID = Field(description="The webhook-id every attempt carried")
    type: str
    state: str
    attempts: int
    next_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    replay_of: uuid.UUID | None
    attempt_log: list[AttemptOut]


class DeliveryList(BaseModel):
    items: list[DeliveryOut]
    next_before: str | None = Field(
        description="Pass as before= for older deliveries (an opaque cursor)"
    )


class Queued(BaseModel):
    delivery_id: uuid.UUID
    event_id: uuid.UUID
