"""The delivery worker: a loop in every connector_service process. Each round claims due
deliveries (FOR UPDATE SKIP LOCKED with a lease, so any number of processes and replicas share
the queue and a process that dies mid-attempt leaves its rows to be claimed again), sends them
with no database connection held, then records every attempt in one transaction.

Webhooks are POSTed as JSON signed per Standard Webhooks: ``webhook-id`` is the event's id, the
same on every redelivery and replay; every secret signing now (the current one, and a rotated
one within its grace) adds a signature to ``webhook-signature``. A 2xx answer is success;
anything else, a timeout or an address the egress rule refuses (checked on every connection,
after resolving) is retried on the schedule, then given up. An endpoint failing every attempt
for ``webhook_disable_after_days`` is disabled, audited, and a ``webhook.endpoint_disabled``
event published. Email to admins rides the same queue (connector_service/outbound/email.py).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import structlog
from prometheus_client import Counter, Histogram
from standardwebhooks import Webhook

from common import audit
from common.crypto import KeyRing
from common.db import Database
from common.endpoints import EndpointNotAllowed, EndpointPolicy
from connector_service.outbound import email, events, queue, repository, service
from connector_service.settings import ConnectorServiceSettings
from seedos_sdk.egress import CheckedTransport

log = structlog.get_logger(component="outbound")

DELIVERIES = Counter(
    "seedos_outbound_deliveries_total",
    "Webhook delivery attempts by outcome (delivered, failed, timeout, refused).",
    ["outcome"],
)
DELIVERY_SECONDS = Histogram(
    "seedos_outbound_delivery_seconds",
    "Duration of one webhook delivery attempt, answer read (at most 1 KiB) included.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RESPONSE_BYTES = 1024
# Sends in flight per process. httpx's pool slows down as connections grow (measured on
# loopback: 560 POST/s at 10 in flight, 250 at 50, 140 at 200), so a round sends its batch
# through this many at a time.
CONCURRENCY = 16
SYSTEM_ACTOR = "connector_service"
SWEEP_SECONDS = 3600


class Deliverer:
    def __init__(
        self,
        db: Database,
        ring: KeyRing,
        *,
        policy: EndpointPolicy,
        settings: ConnectorServiceSettings,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._db = db
        self._ring = ring
        self._settings = settings
        self._schedule = settings.webhook_retry_schedule_seconds
        self._lease = 2 * max(settings.webhook_timeout_seconds, settings.smtp_timeout_seconds) + 10
        self._client = httpx.AsyncClient(
            transport=transport or CheckedTransport(
                policy,
                limits=httpx.Limits(
                    max_connections=2 * CONCURRENCY, max_keepalive_connections=2 * CONCURRENCY
                ),
            ),
            timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False,
            headers={"user-agent": "SEED-OS-Webhooks/1", "content-type": "application/json"},
        )  # fmt: skip
        self._mailer = email.Mailer.from_settings(settings)
        self._signers: dict[int, Webhook] = {}  # by secret row id: decrypted once
        self._last_sweep = 0.0

    async def aclose(self) -> None:
        await self._client.aclose()

    async def run(self) -> None:
        """Drain forever: at once again after a full batch, else after the poll interval."""
        while True:
            try:
                claimed = await self.drain_once()
                await self._maybe_sweep()
            except Exception as exc:  # the database may be down: try again next tick
                log.warning("outbound_round_failed", error=type(exc).__name__)
                claimed = 0
            if claimed < self._settings.outbound_batch_size:
                await asyncio.sleep(self._settings.outbound_poll_seconds)

    async def drain_once(self) -> int:
        """One round: claim, send, record. Returns how many deliveries were claimed."""
        async with self._db.connection() as conn, conn.transaction():
            rows = await queue.claim(
                conn, limit=self._settings.outbound_batch_size, lease_seconds=self._lease
            )
            if not rows:
                return 0
            hooks = [r for r in rows if r["endpoint_id"] is not None]
            mails = [r for r in rows if r["user_id"] is not None]
            endpoint_ids = list({r["endpoint_id"] for r in hooks})
            urls = await queue.endpoint_urls(conn, endpoint_ids)
            signers = self._signers_of(await repository.signing_secrets(conn, endpoint_ids))
            to = await queue.recipients(conn, mails) if mails and self._mailer else {}
            tenants = (
                await queue.tenant_names(conn, list({r["tenant_id"] for r in mails})) if to else {}
            )
        gate = asyncio.Semaphore(CONCURRENCY)

        async def gated(job: Any) -> dict[str, Any]:
            async with gate:
                return await job

        results = await asyncio.gather(
            *(gated(self._post(r, urls.get(r["endpoint_id"]), signers.get(r["endpoint_id"], [])))
              for r in hooks),
            *(gated(self._mail(r, to.get(r["id"]), tenants.get(r["tenant_id"], "")))
              for r in mails),
        )  # fmt: skip
        await self._record(list(results), hooks)
        return len(rows)

    def _signers_of(self, rows: list[Any]) -> dict[uuid.UUID, list[Webhook]]:
        if len(self._signers) > 10_000:
            self._signers.clear()
        out: dict[uuid.UUID, list[Webhook]] = {}
        for row in rows:
            signer = self._signers.get(row["id"])
            if signer is None:
                signer = self._signers[row["id"]] = Webhook(service.open_secret(self._ring, row))
            out.setdefault(row["endpoint_id"], []).append(signer)
        return out

    def _next(self, row: Any, ok: bool, *, skipped: bool = False) -> dict[str, Any]:
        if ok:
            return {"state": "skipped" if skipped else "delivered"}
        if row["attempts"] > len(self._schedule):
            return {"state": "failed"}
        delay = self._schedule[row["attempts"] - 1] * random.uniform(0.9, 1.1)
        return {"state": "pending", "next_at": datetime.now(UTC) + timedelta(seconds=delay)}

    async def _post(self, row: Any, url: str | None, signers: list[Webhook]) -> dict[str, Any]:
        body = orjson.dumps(
            {"type": row["type"], "timestamp": row["created_at"].isoformat(), "data": row["data"]}
        )
        msg_id = str(row["event_id"])
        now = datetime.now(UTC)
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": " ".join(s.sign(msg_id, now, body) for s in signers),
        }
        status: int | None = None
        answer, error, outcome = b"", None, "failed"
        started = time.perf_counter()
        try:
            if url is None or not signers:
                raise LookupError("the endpoint is gone")
            async with self._client.stream("POST", url, content=body, headers=headers) as resp:
                status = resp.status_code
                async for chunk in resp.aiter_bytes():
                    answer += chunk
                    if len(answer) >= RESPONSE_BYTES:
                        break
            ok = 200 <= status < 300
            outcome = "delivered" if ok else "failed"
            error = None if ok else "http_status"
        except EndpointNotAllowed:
            ok, error, outcome = False, "address_refused", "refused"
        except httpx.TimeoutException:
            ok, error, outcome = False, "timeout", "timeout"
        except httpx.HTTPError as exc:
            ok, error = False, _error_class(exc)
        except LookupError:
            ok, error = False, "endpoint_gone"
        seconds = time.perf_counter() - started
        DELIVERIES.labels(outcome).inc()
        DELIVERY_SECONDS.observe(seconds)
        return {
            "id": row["id"], "endpoint_id": row["endpoint_id"], "ok": ok, "status": status,
            "duration_ms": seconds * 1000, "error": error,
            "response": answer[:RESPONSE_BYTES].decode("utf-8", "ignore") if status else None,
            **self._next(row, ok),
        }  # fmt: skip

    async def _mail(self, row: Any, to: str | None, tenant_name: str) -> dict[str, Any]:
        started = time.perf_counter()
        result: dict[str, Any] = {"id": row["id"], "endpoint_id": None, "status": None,
                                  "response": None}  # fmt: skip
        if self._mailer is None or to is None:  # no SMTP, or opted out / no address: done
            reason = "smtp_not_configured" if self._mailer is None else "no_recipient"
            email.EMAILS.labels("skipped").inc()
            return {**result, "ok": True, "error": reason, "duration_ms": 0.0,
                    **self._next(row, True, skipped=True)}  # fmt: skip
        try:
            await self._mailer.send(to, row, tenant_name)
            ok, error = True, None
            email.EMAILS.labels("sent").inc()
        except Exception as exc:  # any SMTP or network failure: retried on the schedule
            ok, error = False, _error_class(exc)
            email.EMAILS.labels("failed").inc()
        took = (time.perf_counter() - started) * 1000
        return {**result, "ok": ok, "error": error, "duration_ms": took, **self._next(row, ok)}

    async def _record(self, results: list[dict[str, Any]], hooks: list[Any]) -> None:
        succeeded = list({r["endpoint_id"] for r in results if r["endpoint_id"] and r["ok"]})
        failed = list({r["endpoint_id"] for r in results if r["endpoint_id"] and not r["ok"]})
        async with self._db.connection() as conn, conn.transaction():
            await queue.record(conn, results)
            disabled = await queue.endpoint_outcomes(
                conn, succeeded=succeeded, failed=failed,
                disable_after_seconds=self._settings.webhook_disable_after_days * 86400,
            )  # fmt: skip
            for endpoint in disabled:
                await self._disabled(conn, endpoint)

    async def _disabled(self, conn: Any, endpoint: Any) -> None:
        await repository.cancel_pending(conn, [endpoint["id"]])
        since = endpoint["failing_since"].isoformat()
        await audit.record(
            conn, tenant_id=endpoint["tenant_id"], actor=SYSTEM_ACTOR,
            action="webhook.endpoint_disabled", target=f"webhook:{endpoint['id']}",
            payload={"url": endpoint["url"], "failing_since": since},
        )  # fmt: skip
        await events.publish(
            conn, tenant_id=endpoint["tenant_id"], type=events.ENDPOINT_DISABLED,
            data={"endpoint_id": str(endpoint["id"]), "url": endpoint["url"],
                  "description": endpoint["description"], "failing_since": since},
        )  # fmt: skip
        log.warning("webhook_endpoint_disabled", endpoint_id=str(endpoint["id"]))

    async def _maybe_sweep(self) -> None:
        if time.monotonic() - self._last_sweep < SWEEP_SECONDS:
            return
        self._last_sweep = time.monotonic()
        older = datetime.now(UTC) - timedelta(days=self._settings.outbound_retention_days)
        async with self._db.connection() as conn:
            gone = await queue.sweep(conn, older_than=older)
        if gone:
            log.info("outbound_events_expired", count=gone)


def _error_class(exc: BaseException) -> str:
    name = type(exc).__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")[:200]
