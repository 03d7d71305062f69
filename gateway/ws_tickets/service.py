"""Single-use tickets for the sync WebSocket (browsers cannot set headers on a WebSocket).

``POST /api/v1/integrations/{id}/sync/ticket`` gives the caller a ticket for that integration,
valid for 60 seconds; ``sync/ws?ticket=`` consumes it. A ticket stands for the credential that
asked for it (the cache key of its API key or session cookie, see
:mod:`gateway.auth.authenticator`), not for a role: the socket acts as that credential does when
it opens, and is checked again by it while it is open (:mod:`gateway.ws_proxy`). Only the
ticket's SHA-256 hash is stored, so the table cannot be used to connect.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from common.errors import NotFound, SeedosError, Unauthorized
from common.internal_auth import Principal, TokenSigner
from common.roles import Permission, allows
from gateway import proxy
from gateway.proxy import Upstream
from gateway.ws_tickets import repository

TICKET_SECONDS = 60
PREFIX = "syt_"
TICKET_PATH = re.compile(r"/api/v1/integrations/[^/]+/sync/ticket")
_SYNC_WS = re.compile(r"/api/v1/integrations/([^/]+)/sync/ws")


class InvalidTicket(Unauthorized):
    code, title = "invalid_ticket", "Invalid ticket"


class IntegrationNotFound(NotFound):
    code, title = "integration_not_found", "Integration not found"


@dataclass(frozen=True, slots=True)
class Redeemed:
    tenant_id: uuid.UUID
    credential: bytes  # the cache key of the credential the ticket was issued to


def _digest(ticket: str) -> bytes:
    return hashlib.sha256(ticket.encode()).digest()


def integration_of(path: str) -> uuid.UUID | None:
    """The integration of a sync WebSocket's path; None for any other path."""
    match = _SYNC_WS.fullmatch(path)
    try:
        return uuid.UUID(match.group(1)) if match else None
    except ValueError:
        return None


async def check_integration(
    upstream: Upstream, signer: TokenSigner, principal: Principal, integration_id: uuid.UUID
) -> None:
    """Asks connector_service whether the caller's tenant has this integration: returns if it
    does, raises its answer (404 ``integration_not_found``) if not."""
    answered = await proxy.call(
        upstream, signer, principal, "GET", f"/api/v1/integrations/{integration_id}",
        request_id=principal.request_id or "",
    )  # fmt: skip
    if answered.status == 200:
        return
    problem = answered.body if isinstance(answered.body, dict) else {}
    raise SeedosError(
        problem.get("detail"), status=answered.status, code=problem.get("code"),
        title=problem.get("title"),
    )  # fmt: skip


async def issue(
    conn: asyncpg.Connection,
    principal: Principal,
    *,
    credential: bytes,
    integration_id: uuid.UUID,
) -> dict[str, Any]:
    """A new ticket for ``integration_id``, standing for ``credential``. A viewer's ticket
    reads only (``writable: false``)."""
    ticket = PREFIX + secrets.token_urlsafe(32)
    try:
        expires_at = await repository.insert(
            conn, _digest(ticket), tenant_id=principal.tenant_id, integration_id=integration_id,
            credential=credential, ttl_seconds=TICKET_SECONDS,
        )  # fmt: skip
    except asyncpg.ForeignKeyViolationError:  # uninstalled since it was checked
        raise IntegrationNotFound(f"no integration {integration_id} in this tenant") from None
    return {
        "ticket": ticket,
        "expires_at": expires_at,
        "writable": allows(principal.role, Permission.write),
    }


async def redeem(conn: asyncpg.Connection, ticket: str, *, integration_id: uuid.UUID) -> Redeemed:
    """The tenant and credential a ticket was issued to; it is consumed whether or not it is
    accepted."""
    if not ticket.startswith(PREFIX) or len(ticket) > 100:
        raise InvalidTicket("not a sync ticket")
    row = await repository.take(conn, _digest(ticket))
    if row is None or not row["valid"] or row["integration_id"] != integration_id:
        raise InvalidTicket("the ticket is unknown, used, expired or for another integration")
    return Redeemed(tenant_id=row["tenant_id"], credential=bytes(row["credential"]))
