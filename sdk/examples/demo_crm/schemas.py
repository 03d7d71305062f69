"""Request bodies of the demo CRM.

Unknown fields are refused; the read-only fields a client gets back from a read (``id``,
``created_at``, ``updated_at``, ``deleted``, ``deleted_at``) are accepted and ignored, so a
record read from the API can be written back as it is.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

RecordId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]

READ_ONLY = frozenset({"id", "created_at", "updated_at", "deleted", "deleted_at"})


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: RecordId | None = None
    created_at: Any = None
    updated_at: Any = None
    deleted: Any = None
    deleted_at: Any = None

    def values(self) -> dict[str, Any]:
        """The writable fields the client sent (all of them for a full body)."""
        return self.model_dump(exclude=READ_ONLY, exclude_unset=True)


class ContactIn(Body):
    email: Email
    first_name: Text | None = None
    last_name: Text | None = None
    phone: Text | None = None
    company_id: RecordId | None = None


class ContactPatch(Body):
    email: Email = None  # type: ignore[assignment]  # may be left out, never set to null
    first_name: Text | None = None
    last_name: Text | None = None
    phone: Text | None = None
    company_id: RecordId | None = None


class CompanyIn(Body):
    name: Name
    domain: Text | None = None
    industry: Text | None = None


class CompanyPatch(Body):
    name: Name = None  # type: ignore[assignment]  # may be left out, never set to null
    domain: Text | None = None
    industry: Text | None = None


class FaultIn(BaseModel):
    """One injected fault: the next ``count`` matching requests are delayed and/or fail."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: int = Field(0, ge=0, le=120_000)
    status: Literal[400, 429, 500, 502, 503, 504] | None = None
    count: int = Field(1, ge=1, le=1_000_000)
    retry_after: int | None = Field(None, ge=0, le=3600)
    paths: str | list[str] = "/v1/"
    methods: list[str] | None = None


class SeedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contacts: int = Field(0, ge=0, le=1_000_000)
    companies: int = Field(0, ge=0, le=100_000)
