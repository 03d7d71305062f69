"""Provider webhooks: the public intake, and each install's URL, secret and refusals."""

from __future__ import annotations

import secrets
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.db import Db, ReadDb
from common.errors import PROBLEM_RESPONSES, InvalidRequest
from common.internal_auth import CurrentPrincipal, requires
from common.roles import Permission
from connector_service.integrations import repository as integrations
from connector_service.integrations.routes import Ring
from connector_service.integrations.service import IntegrationNotFound
from connector_service.webhooks import repository, service
from connector_service.webhooks.schemes import Refused

router = APIRouter(
    prefix="/api/v1/integrations",
    tags=["integrations"],
    dependencies=[requires(Permission.read)],
    responses=PROBLEM_RESPONSES,
)
# Providers post here with no API key: the gateway forwards this one path unauthenticated, its
# body unread; the install's signing secret is the authorization.
public_router = APIRouter(tags=["integrations"], responses=PROBLEM_RESPONSES)
Writer = [requires(Permission.write)]
Token = Annotated[str, Path(min_length=20, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]


class NoWebhooks(InvalidRequest):
    code, title = "webhooks_not_supported", "This install's connector declares no webhooks"


class SecretIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: str | None = Field(
        None, min_length=16, max_length=500,
        description="The provider's signing secret (Stripe's whsec_...)",
    )  # fmt: skip
    generate: bool = Field(False, description="Make one (GitHub, where you choose the secret)")

    @model_validator(mode="after")
    def one(self) -> SecretIn:
        if (self.secret is None) == (not self.generate):
            raise ValueError("give secret, or generate: true")
        return self


async def _intake(request: Request) -> service.Intake:
    return request.app.state.webhooks


Intake = Annotated[service.Intake, Depends(_intake)]


@public_router.post(service.PATH + "{token}", include_in_schema=False)
async def deliver(token: Token, request: Request, intake: Intake) -> JSONResponse:
    """A provider's delivery: verified with the install's secret, taken once, applied."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > service.MAX_BODY:
            break
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        taken = await intake.receive(token, headers, bytes(body))
    except Refused as refusal:
        if refusal.status == 200:  # a replay: answered as done, so the provider stops
            return JSONResponse({"taken": False, "reason": refusal.reason,
                                 "detail": refusal.detail})  # fmt: skip
        return JSONResponse({"type": f"urn:seedos:problem:webhook_{refusal.reason}",
                             "title": "Webhook delivery refused", "status": refusal.status,
                             "detail": refusal.detail, "code": f"webhook_{refusal.reason}"},
                            status_code=refusal.status,
                            media_type="application/problem+json")  # fmt: skip
    if "challenge" in taken:  # Slack's url_verification
        return JSONResponse({"challenge": taken["challenge"]})
    return JSONResponse({"taken": True, **taken})


async def _install(db: Any, tenant_id: uuid.UUID, integration_id: uuid.UUID) -> tuple[Any, Any]:
    row = await integrations.get(db, tenant_id, integration_id)
    if row is None:
        raise IntegrationNotFound(f"no integration {integration_id} in this tenant")
    pinned = await integrations.pinned_version(db, row["marketplace_connector_id"], row["version"])
    return row, service.Hooks.of(pinned["manifest"] if pinned else None)


def _url(request: Request, token: str) -> str:
    return request.app.state.oauth.public_url.rstrip("/") + service.PATH + token


@router.get("/{integration_id}/webhook")
async def get_webhook(
    integration_id: uuid.UUID, db: ReadDb, principal: CurrentPrincipal, request: Request,
    ring: Ring, response: Response,
) -> dict[str, Any]:  # fmt: skip
    """The install's webhook: whether its connector has any, the URL to give the provider
    (``null`` until made with POST), whether a secret is set, the events and what each does,
    and the deliveries taken and refused in the last day with the latest refusals."""
    response.headers["Cache-Control"] = "no-store"  # the URL is a capability: kept nowhere
    _row, hooks = await _install(db, principal.tenant_id, integration_id)
    if hooks is None:
        return {"supported": False}
    url = None
    if await repository.has_endpoint(db, integration_id):
        url = _url(request, await service.endpoint(db, ring, tenant_id=principal.tenant_id,
                                                   integration_id=integration_id))  # fmt: skip
    stored = await service.credentials_service.fields_set(
        db, tenant_id=principal.tenant_id, integration_id=integration_id
    )
    events = [{"types": list(e.types), "stream": e.stream, "carries_record": e.record is not None,
               "pull": e.pull} for e in hooks.events]  # fmt: skip
    return {"supported": True, "scheme": hooks.scheme, "url": url,
            "secret_set": service.SECRET_FIELD in stored, "events": events, "setup": hooks.setup,
            **await repository.summary(db, integration_id)}  # fmt: skip


@router.post("/{integration_id}/webhook", dependencies=Writer)
async def make_webhook(
    integration_id: uuid.UUID, db: Db, principal: CurrentPrincipal, request: Request,
    ring: Ring, intake: Intake, rotate: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Make the install's webhook URL (or, with ``rotate=true``, a new one: the old stops)."""
    _row, hooks = await _install(db, principal.tenant_id, integration_id)
    if hooks is None:
        raise NoWebhooks("this install's connector declares no webhooks")
    token = await service.endpoint(db, ring, tenant_id=principal.tenant_id,
                                   integration_id=integration_id, rotate=rotate)  # fmt: skip
    intake.forget(integration_id)
    return {"url": _url(request, token)}


@router.put("/{integration_id}/webhook/secret", dependencies=Writer)
async def put_secret(
    integration_id: uuid.UUID, body: SecretIn, db: Db, principal: CurrentPrincipal, ring: Ring,
    intake: Intake,
) -> dict[str, Any]:  # fmt: skip
    """Set the signing secret deliveries are checked with: the provider's (``secret``), or one
    made here (``generate``), answered this once for you to give the provider."""
    _row, hooks = await _install(db, principal.tenant_id, integration_id)
    if hooks is None:
        raise NoWebhooks("this install's connector declares no webhooks")
    made = secrets.token_urlsafe(32) if body.generate else None
    secret = made or body.secret or ""
    await service.set_secret(db, ring, tenant_id=principal.tenant_id,
                             integration_id=integration_id, secret=secret)  # fmt: skip
    intake.forget(integration_id)
    return {"secret_set": True, **({"secret": made} if made else {})}
