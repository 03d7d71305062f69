"""Dependencies shared by the demo CRM's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from .auth import Authenticator, Principal
from .faults import Faults
from .store import Database


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_faults(request: Request) -> Faults:
    return request.app.state.faults


async def require_auth(
    request: Request,
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    authenticator: Authenticator = request.app.state.authenticator
    return await authenticator.authenticate(api_key=x_api_key, authorization=authorization)


Db = Annotated[Database, Depends(get_db)]
FaultState = Annotated[Faults, Depends(get_faults)]
CurrentPrincipal = Annotated[Principal, Depends(require_auth)]
