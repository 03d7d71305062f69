from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: a 422 here, not a 500 there
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_NUL)
]
Industry = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, min_length=1, max_length=60, pattern=NO_NUL
    ),
    Field(description="What the company does, e.g. `fintech`; compared case-insensitively"),
]
Size = Annotated[int, Field(gt=0, le=10_000_000, description="Number of employees")]
Description = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=2000, pattern=NO_NUL),
    Field(description="Free text; recommendations match it against connector descriptions"),
]


class TenantProfile(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    industry: str | None
    size: int | None
    description: str | None
    created_at: datetime
    updated_at: datetime


class TenantProfileUpdate(BaseModel):
    """Only the fields given change; ``null`` clears industry, size or description."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    industry: Industry | None = None
    size: Size | None = None
    description: Description | None = None

    def changes(self) -> dict[str, object]:
        changes = self.model_dump(exclude_unset=True)
        if changes.get("description") == "":
            changes["description"] = None  # blank text is no description
        return changes
