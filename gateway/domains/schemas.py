from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from common.roles import Role

DomainName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=300, pattern=r"^[^\x00]*$"),
    Field(
        description="An email domain, e.g. `example.com`; stored lowercase, internationalised"
        " names as punycode (`bücher.de` → `xn--bcher-kva.de`)",
        examples=["example.com"],
    ),
]


class DomainCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: DomainName


class DomainOut(BaseModel):
    domain: str = Field(description="Lowercase ASCII (punycode for internationalised names)")
    role: Role = Field(description="The role people of the domain join as: always viewer")
    created_by: str = Field(description="Who registered it: `user:<id>`, `apikey:<id>`, ...")
    created_at: datetime


class DomainList(BaseModel):
    items: list[DomainOut]
    next_cursor: str | None = Field(
        None, description="Always null: a tenant's domains (100 at most) fit one page"
    )
