"""Single-use tickets for the sync WebSocket (browsers cannot set headers on a WebSocket).

``POST sync/ticket`` gives the caller a ticket bound to its tenant, the integration, its
subject and its role, valid for 60 seconds; ``sync/ws?ticket=`` consumes it. Only a SHA-256
hash is stored, so the table cannot be used to connect. A viewer's ticket is a viewer's: it
reads the document, its updates are refused."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

from common.db import Database
from common.errors import Unauthorized
from common.internal_auth import Principal
from common.roles import Permission, allows
from connector_service.sync import repository

TICKET_SECONDS = 60
PREFIX = "syt_"


class InvalidTicket(Unauthorized):
    code, title = "invalid_ticket", "Invalid ticket"


def _digest(ticket: str) -> bytes:
    return hashlib.sha256(ticket.encode()).digest()


async def issue(db: Database, principal: Principal, integration_id: uuid.UUID) -> dict[str, Any]:
    ticket = PREFIX + secrets.token_urlsafe(32)
    async with db.connection() as conn:
        expires_at = await repository.create_ticket(
            conn, _digest(ticket), tenant_id=principal.tenant_id, integration_id=integration_id,
            subject=principal.subject, role=principal.role, ttl_seconds=TICKET_SECONDS,
        )  # fmt: skip
    return {
        "ticket": ticket,
        "expires_at": expires_at,
        "writable": allows(principal.role, Permission.write),
    }


async def redeem(db: Database, ticket: str, integration_id: uuid.UUID) -> Principal:
    """The principal a ticket stands for; it is consumed whether or not it is accepted."""
    if not ticket.startswith(PREFIX) or len(ticket) > 100:
        raise InvalidTicket("not a sync ticket")
    async with db.connection() as conn:
        row = await repository.take_ticket(conn, _digest(ticket))
    if row is None or not row["valid"] or row["integration_id"] != integration_id:
        raise InvalidTicket("the ticket is unknown, used, expired or for another integration")
    return Principal(
        tenant_id=row["tenant_id"], subject=row["subject"], role=row["role"], issuer="ticket"
    )
