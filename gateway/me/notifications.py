"""The signed-in person's notification preferences: ``/api/v1/me/notifications``. Today one
switch, email (alerts opened and webhook endpoints disabled, sent to a tenant's admins by
connector_service, which reads this table before each message). On unless turned off."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from common import audit
from common.db import Db, ReadDb
from common.errors import PROBLEM_RESPONSES
from gateway.deps import Person
from gateway.me import preferences

router = APIRouter(prefix="/api/v1/me", tags=["me"], responses=PROBLEM_RESPONSES)


class Notifications(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: bool = Field(
        description="Email me (as an admin) when an alert opens or a webhook endpoint is disabled"
    )


@router.get("/notifications")
async def get_notifications(principal: Person, db: ReadDb) -> Notifications:
    """The signed-in person's notification preferences."""
    assert principal.user_id is not None
    return Notifications(email=await preferences.email_enabled(db, principal.user_id))


@router.put("/notifications")
async def put_notifications(body: Notifications, principal: Person, db: Db) -> Notifications:
    """Set the signed-in person's notification preferences (for every tenant they are in)."""
    assert principal.user_id is not None
    await preferences.set_email(db, principal.user_id, body.email)
    await audit.record(
        db, tenant_id=principal.tenant_id if principal.has_tenant else None,
        actor=str(principal.user_id), action="me.notifications_changed",
        target=f"user:{principal.user_id}", payload={"email": body.email},
        request_id=principal.request_id,
    )  # fmt: skip
    return Notifications(email=body.email)
