"""Invitation emails over SMTP (``SEEDOS_GATEWAY_SMTP``), sent with the standard library's
smtplib in a worker thread.

Sending happens after the invitation is committed and with no database connection held: a
send that fails or times out loses nothing (the admin still has the link) and is logged,
without the link, whose token must not reach the logs."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING

import structlog

from gateway.settings import SmtpSettings

if TYPE_CHECKING:
    from gateway.invitations.service import Created

log = structlog.get_logger(component="seedos.gateway.invitations")
IMPLICIT_TLS_PORT = 465  # SMTPS (RFC 8314): TLS from the first byte, no STARTTLS


def _one_line(text: str) -> str:
    return " ".join(text.split())


def message(
    *, sender: str, to: str, tenant_name: str, role: str, link: str, expires_at: datetime
) -> EmailMessage:
    tenant = _one_line(tenant_name)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = f"You are invited to {tenant} on SEED-OS"
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg.set_content(
        f"You have been invited to join {tenant} on SEED-OS as {role}.\n\n"
        f"Accept the invitation here (sign in with {to}):\n\n{link}\n\n"
        f"The link works once, until {expires_at:%Y-%m-%d %H:%M} UTC. If you did not expect "
        "this invitation, ignore this email.\n"
    )
    return msg


def _send(smtp: SmtpSettings, msg: EmailMessage) -> None:
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if smtp.port == IMPLICIT_TLS_PORT:
        client = smtplib.SMTP_SSL(
            smtp.host, smtp.port, timeout=smtp.timeout_seconds, context=context
        )
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
    with client:
        if smtp.starttls and smtp.port != IMPLICIT_TLS_PORT:
            client.starttls(context=context)
        if smtp.username:
            password = smtp.password.get_secret_value() if smtp.password else ""
            client.login(smtp.username, password)
        client.send_message(msg)


async def send_invitation(
    smtp: SmtpSettings,
    *,
    invitation_id: object,
    to: str,
    tenant_name: str,
    role: str,
    link: str,
    expires_at: datetime,
) -> bool:
    """Email the invitation; True when the server took it, False (logged) when it did not."""
    try:
        msg = message(
            sender=smtp.sender, to=to, tenant_name=tenant_name, role=role, link=link,
            expires_at=expires_at,
        )  # fmt: skip
        await asyncio.to_thread(_send, smtp, msg)
    except (smtplib.SMTPException, OSError, ValueError) as exc:
        # the exception's text may quote what the server echoed back: log its type only
        log.warning(
            "invitation_email_failed", invitation_id=str(invitation_id), smtp_host=smtp.host,
            smtp_port=smtp.port, error=type(exc).__name__,
        )  # fmt: skip
        return False
    log.info("invitation_emailed", invitation_id=str(invitation_id))
    return True


async def send_created(smtp: SmtpSettings | None, created: Created) -> bool:
    """Email a just-created invitation (:func:`gateway.invitations.service.create`): False when
    no SMTP server is configured, else as :func:`send_invitation`."""
    if smtp is None:
        return False
    invitation = created.invitation
    return await send_invitation(
        smtp, invitation_id=invitation["id"], to=invitation["email"],
        tenant_name=created.tenant_name, role=invitation["role"], link=created.link,
        expires_at=invitation["expires_at"],
    )  # fmt: skip
