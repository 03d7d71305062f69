from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

from connector_service.integrations.preconditions import etag


class Status(StrEnum):
    pending = "pending"
    active = "active"
    error = "error"
    disabled = "disabled"
    update_required = "update_required"  # its version was withdrawn by the publisher


class Circuit(BaseModel):
    """This service replica's circuit breaker for the install: ``open`` after repeated failures
    (calls refused at once), ``half_open`` while one probe call is let through."""

    state: str = Field(description="closed, open or half_open")
    consecutive_failures: int
    last_error: str | None = None
    opened_at: datetime | None = None
    probe_after: datetime | None = Field(None, description="When a probe call may go through")


class IntegrationOut(BaseModel):
    id: uuid.UUID
    connector_name: str
    service_name: str
    marketplace_connector_id: uuid.UUID | None
    version: str | None
    status: Status
    status_reason: str | None
    last_error: str | None
    config: dict[str, Any]
    last_sync_at: datetime | None
    sync_interval_seconds: int = 300
    created_at: datetime
    updated_at: datetime
    circuit: Circuit = Field(
        default_factory=lambda: Circuit(state="closed", consecutive_failures=0)
    )
    setup_done: list[int] = Field(
        default_factory=list,
        description="The setup guide's steps ticked done: indices into the catalog entry's"
        " `setup_steps` (GET /api/v1/marketplace/connectors/{slug}), ascending",
    )
    settings_revision: int = Field(exclude=True)

    @computed_field(
        description="The install's ETag, quoted, as the `ETag` header gives it: it changes when"
        " its settings change (config, connector_name, sync_interval_seconds, version), not"
        " with its status. Send it in If-Match to change the install only if it is unchanged"
    )  # type: ignore[prop-decorator]
    @property
    def etag(self) -> str:
        return etag(self.id, self.settings_revision)


class InstallOut(IntegrationOut):
    """A new install, with what the catalog says of how far its connector is known to work."""

    verification: Literal["verified", "checked", "described"] | None = Field(
        None,
        description="The catalog entry's level: `verified` (passes the conformance suite against"
        " a stand-in of the provider), `checked` (checked against the provider's own API"
        " description), `described` (written from documentation only); null: not rated",
    )
    notice: str | None = Field(
        None,
        description="For a `described` connector: that it was written from the provider's"
        " documentation and not checked against the provider",
    )


# Publishing allows at most 20 setup steps (marketplace_service.publishing.schemas).
MAX_SETUP_STEPS = 20


class SetupProgressIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    done: list[Annotated[int, Field(ge=0, lt=MAX_SETUP_STEPS)]] = Field(
        max_length=MAX_SETUP_STEPS,
        description="Every step done now (replaces what was stored): indices into the catalog"
        " entry's `setup_steps`, 0 for the first; an empty list clears the progress",
    )


class IntegrationPage(BaseModel):
    items: list[IntegrationOut]
    next_cursor: str | None = None


class IntegrationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connector: str = Field(
        min_length=1, max_length=63, pattern=r"^[a-z0-9-]+$", description="Catalog entry slug"
    )
    connector_name: str | None = Field(
        None, min_length=1, max_length=200, description="Your name for this install"
    )
    config: dict[str, Any] = Field(default_factory=dict, description="Non-secret settings")
    credentials: dict[str, str] = Field(
        default_factory=dict, description="Secret fields; stored encrypted, never returned"
    )
    scopes: list[str] | None = Field(None, description="OAuth scopes to request")


class IntegrationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connector_name: str | None = Field(None, min_length=1, max_length=200)
    config: dict[str, Any] | None = None
    sync_interval_seconds: int | None = Field(
        None, description="Seconds between scheduled sync runs (at least 10); 0 turns them off"
    )

    @field_validator("sync_interval_seconds")
    @classmethod
    def _interval(cls, value: int | None) -> int | None:
        if value is not None and value != 0 and not 10 <= value <= 7 * 24 * 3600:
            raise ValueError("0 (off) or 10 to 604800 seconds")
        return value


class CredentialsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credentials: dict[str, str] = Field(min_length=1)


class CredentialsOut(BaseModel):
    fields_set: list[str] = Field(description="Secret fields that have a value (never the values)")


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Any = Field(default_factory=dict, description="The action's input (its JSON Schema)")


class ActionOut(BaseModel):
    output: Any
