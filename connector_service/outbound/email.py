"""Email to a tenant's admins for ``alert.opened`` and ``webhook.endpoint_disabled``, over SMTP
when ``SEEDOS_CONNECTOR_SMTP_HOST`` is set. The delivery worker sends one message per admin
delivery (recipients resolved at send time: still an admin, a verified address, not opted out
in the gateway's notification preferences), retried on the webhooks' schedule.

smtplib's timeout bounds each socket operation, not a send: a server answering a byte at a time
could hold one for ever, past its delivery's lease (and the row would be sent again meanwhile).
So a whole send has a deadline, ``smtp_timeout_seconds``, the time the worker's lease already
allows an attempt: it runs in a small pool of threads of its own (not asyncio's default one,
which DNS look-ups need) under ``asyncio.timeout``; past it the socket is shut, which ends the
thread's blocked call at once, and the attempt fails (a timeout, retried on the schedule)."""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from prometheus_client import Counter

from connector_service.settings import ConnectorServiceSettings

EMAILS = Counter(
    "seedos_outbound_emails_total",
    "Emails to tenant admins by outcome (sent, failed, skipped: opted out, no address, no SMTP).",
    ["outcome"],
)
# sends at once per process (the worker lets as many run: its per-target room for email)
THREADS = 16


@dataclass(frozen=True)
class Mailer:
    host: str
    port: int
    sender: str
    starttls: bool
    user: str | None
    password: str | None = field(repr=False)  # never in a repr, a log or a traceback
    timeout: float = 10.0  # per socket operation, and for a whole send
    _pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(THREADS, thread_name_prefix="smtp"),
        repr=False, compare=False,
    )  # fmt: skip

    @classmethod
    def from_settings(cls, settings: ConnectorServiceSettings) -> Mailer | None:
        if not settings.smtp_host:
            return None
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return cls(
            host=settings.smtp_host, port=settings.smtp_port, sender=settings.smtp_from,
            starttls=settings.smtp_starttls, user=settings.smtp_user, password=password,
            timeout=settings.smtp_timeout_seconds,
        )  # fmt: skip

    async def send(self, to: str, event: Any, tenant_name: str) -> None:
        """Send the event's message to ``to``, all of it within :attr:`timeout` seconds
        (``TimeoutError`` past it, the connection cut)."""
        message = compose(event, to=to, sender=self.sender, tenant_name=tenant_name)
        smtp = smtplib.SMTP(timeout=self.timeout)  # connected in the thread
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.shield(loop.run_in_executor(self._pool, self._send, smtp, message))
        except TimeoutError:
            if smtp.sock is not None:  # wakes the thread's blocked call: it ends with an error
                with contextlib.suppress(OSError):
                    smtp.sock.shutdown(socket.SHUT_RDWR)
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _send(self, smtp: smtplib.SMTP, message: EmailMessage) -> None:
        with smtp:
            smtp.connect(self.host, self.port)
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.user and self.password:
                smtp.login(self.user, self.password)
            smtp.send_message(message)


def compose(event: Any, *, to: str, sender: str, tenant_name: str) -> EmailMessage:
    """The message of one event: a subject saying what happened, the details as plain text.
    Its Message-ID is made from the event id, so a resent copy can be recognised."""
    data: dict[str, Any] = event["data"]
    where = f" ({tenant_name})" if tenant_name else ""
    if event["type"] == "alert.opened":
        what = data.get("connector_name") or data.get("integration_id", "an integration")
        subject = f"Alert: {data.get('metric', 'a metric')} of {what}{where}"
        lead = "An alert opened on one of your integrations."
    else:
        subject = f"Webhook endpoint disabled: {data.get('url', '')}{where}"
        lead = (
            "A webhook endpoint failed every delivery for days and was disabled."
            " Fix the receiver, enable the endpoint again and replay what it missed."
        )
    message = EmailMessage()
    message["Subject"] = subject[:200]
    message["From"] = sender
    message["To"] = to
    message["Message-ID"] = make_msgid(idstring=str(event["event_id"]), domain="seedos")
    lines = [lead, ""] + [f"{k}: {v}" for k, v in sorted(data.items())]
    lines += ["", "You get this because you are an admin of the tenant.",
              "Turn these emails off in Settings > Notifications."]  # fmt: skip
    message.set_content("\n".join(lines))
    return message
