"""The delivery worker: a loop in every connector_service process. It claims due deliveries in
batches (one statement: FOR UPDATE SKIP LOCKED with a lease, so any number of processes and
replicas share the queue and a process that dies mid-attempt leaves its rows to be claimed
again) as room frees up, and sends them with no database connection held: at most
:data:`MAX_IN_FLIGHT` sends in flight per process and :data:`PER_ENDPOINT` per endpoint. Up to
twice that is claimed, so the next batch is at hand while a claim runs; a claimed row waits for
at most one send of its endpoint, and one that would still be sending when its lease ends is
not sent (left to the next claim). The attempts are recorded in batches, one transaction for
all the results of the last :data:`RECORD_DELAY` seconds (at least once: a result not recorded
leaves its row leased, and it is sent again once the lease ends).

Webhooks are POSTed as JSON signed per Standard Webhooks: ``webhook-id`` is the event's id, the
same on every redelivery and replay; every secret signing now (the current one, and a rotated
one within its grace) adds a signature to ``webhook-signature``. Connections are kept alive
per endpoint (aiohttp: on loopback ~8x the POSTs per second of httpx's pool, which also slows
down as connections grow). A 2xx answer is success; anything else, a timeout or an address the
egress rule refuses is retried on the schedule, then given up. The rule is checked on every new
connection: a name is resolved through the rule (:class:`CheckedResolver`, no DNS cache, so the
connection goes to exactly the addresses checked and DNS cannot rebind past it), and an address
written in the URL, which aiohttp connects to without resolving, is checked before each send.
An endpoint failing every attempt for ``webhook_disable_after_days`` is disabled, audited, and a
``webhook.endpoint_disabled`` event published. Email to admins rides the same queue
(connector_service/outbound/email.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
import uuid
from collections import Counter as Tally
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import aiohttp
import asyncpg
import orjson
import structlog
from aiohttp.abc import AbstractResolver, ResolveResult
from prometheus_client import Counter, Histogram
from standardwebhooks import Webhook
from yarl import URL

from common import audit
from common.crypto import KeyRing
from common.db import Database
from common.endpoints import EndpointNotAllowed, EndpointPolicy, parse_address
from connector_service.outbound import email, events, queue, repository, service
from connector_service.settings import ConnectorServiceSettings
from seedos_sdk.egress import HostNotResolved

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
RESPONSE_BYTES = queue.RESPONSE_BYTES
# Sends (webhooks and emails) in flight per process, and per endpoint (all email counting as
# one target, the SMTP server); twice as many are claimed ahead. bench/outbound.py: 10
# endpoints on loopback drain fastest around here; a slow endpoint holds at most PER_ENDPOINT.
MAX_IN_FLIGHT = 128
PER_ENDPOINT = 16
AHEAD = 2
# While rows are claimed, the next claim waits for this much room (claims stay batches).
CLAIM_AT_LEAST = 32
# Results are recorded together: what finished in this long, or this many at once.
RECORD_DELAY = 0.05
RECORD_BATCH = 1000
# Results kept while the database is down; past this the oldest are dropped (their rows stay
# leased and are sent again when the lease ends: at least once).
RECORD_BACKLOG = 20_000
# A claimed row not sending by (claimed + lease - timeout - this) is not sent: see _start.
LEASE_MARGIN = 2.0
SYSTEM_ACTOR = "connector_service"
SWEEP_SECONDS = 3600


class CheckedResolver(AbstractResolver):
    """aiohttp's resolver through the egress rule: a name's addresses are resolved by the rule
    and all must pass it (:class:`EndpointNotAllowed` otherwise, nothing connected); the
    connection then goes to one of exactly those. A name without addresses is a connection
    error (retried), as for any call."""

    def __init__(self, policy: EndpointPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            addresses = await self._policy.resolve(host, port)
        except HostNotResolved:
            raise OSError(f"{host!r} does not resolve") from None
        self._policy.check_addresses(host, addresses)
        return [
            ResolveResult(
                hostname=host, host=str(a), port=port, proto=0, flags=socket.AI_NUMERICHOST,
                family=socket.AF_INET6 if a.version == 6 else socket.AF_INET,
            )
            for a in addresses
        ]  # fmt: skip

    async def close(self) -> None:
        return None


class Deliverer:
    def __init__(
        self,
        db: Database,
        ring: KeyRing,
        *,
        policy: EndpointPolicy,
        settings: ConnectorServiceSettings,
    ) -> None:
        self._db = db
        self._ring = ring
        self._policy = policy
        self._settings = settings
        self._schedule = settings.webhook_retry_schedule_seconds
        self._lease = 2 * max(settings.webhook_timeout_seconds, settings.smtp_timeout_seconds) + 10
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=MAX_IN_FLIGHT, limit_per_host=0, use_dns_cache=False,
                resolver=CheckedResolver(policy),
            ),
            timeout=aiohttp.ClientTimeout(total=settings.webhook_timeout_seconds),
            cookie_jar=aiohttp.DummyCookieJar(), trust_env=False, auto_decompress=False,
            headers={"user-agent": "SEED-OS-Webhooks/1", "content-type": "application/json"},
        )  # fmt: skip
        self._mailer = email.Mailer.from_settings(settings)
        self._signers: dict[int, Webhook] = {}  # by secret row id: decrypted once
        self._literal: dict[str, Any] = {}  # URL -> (host, its address if it is one, allowed)
        self._last_sweep = 0.0
        self._claimed: set[asyncio.Task[dict[str, Any] | None]] = set()  # waiting or sending
        self._busy: Tally[uuid.UUID] = Tally()  # claimed rows per target
        self._gates: dict[uuid.UUID, asyncio.Semaphore] = {}  # sends in flight per target
        self._sending = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._freed = asyncio.Event()
        self._done = 0  # claimed rows finished (sent, or not sent), ever
        self._results: list[dict[str, Any]] = []
        self._releases: list[tuple[uuid.UUID, uuid.UUID]] = []  # claimed, not sent: (id, lease)
        self._has_results = asyncio.Event()

    async def aclose(self) -> None:
        await self._session.close()
        if self._mailer is not None:
            self._mailer.close()

    async def run(self) -> None:
        """Deliver forever: claim as room frees up, record in batches. Cancelled (shutdown),
        the sends in flight stop (their rows stay leased) and what finished is recorded."""
        recorder = asyncio.create_task(self._record_forever(), name="outbound-record")
        try:
            while True:
                try:
                    asked, got = await self._claim_round()
                    await self._maybe_sweep()
                except Exception as exc:  # the database may be down: try again next tick
                    log.warning("outbound_round_failed", error=type(exc).__name__)
                    asked, got = 1, 0
                await self._pause(asked, got)
        finally:
            await self._stop(recorder)

    async def _pause(self, asked: int, got: int) -> None:
        poll = self._settings.outbound_poll_seconds
        if asked and not got:  # nothing due: the poll interval
            await asyncio.sleep(poll)
            return
        if got >= asked:  # more may be due (or no room was left): once there is a batch's room
            while AHEAD * MAX_IN_FLIGHT - len(self._claimed) < CLAIM_AT_LEAST:
                self._freed.clear()
                await self._freed.wait()
            return
        # held back by the endpoints' room, or all that was due: once half of it is done (or
        # after the poll interval, when those sends are slow)
        mark, need = self._done, max(1, got // 2)
        deadline = time.monotonic() + poll
        while self._done - mark < need and (left := deadline - time.monotonic()) > 0:
            self._freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), left)

    async def _claim_round(self) -> tuple[int, int]:
        """Claim what there is room for and start sending it. Returns (asked, claimed)."""
        room = min(AHEAD * MAX_IN_FLIGHT - len(self._claimed), self._settings.outbound_batch_size)
        if room <= 0:
            return 0, 0
        async with self._db.connection() as conn, conn.transaction():
            await queue.plan_each_time(conn)
            rows = await queue.claim(
                conn, limit=room, lease_seconds=self._lease, per_target=AHEAD * PER_ENDPOINT,
                busy=dict(self._busy),
            )  # fmt: skip
            if not rows:
                return room, 0
            claimed_at = time.monotonic()
            hooks = [r for r in rows if r["endpoint_id"] is not None]
            mails = [r for r in rows if r["user_id"] is not None]
            endpoint_ids = list({r["endpoint_id"] for r in hooks})
            urls = await queue.endpoint_urls(conn, endpoint_ids) if hooks else {}
            secrets = await repository.signing_secrets(conn, endpoint_ids) if hooks else []
            signers = self._signers_of(secrets)
            to = await queue.recipients(conn, mails) if mails and self._mailer else {}
            tenants = (
                await queue.tenant_names(conn, list({r["tenant_id"] for r in mails})) if to else {}
            )
        bodies: dict[uuid.UUID, bytes] = {}  # an event's body is the same to every endpoint
        for r in hooks:
            body = bodies.get(r["event_id"])
            if body is None:
                body = bodies[r["event_id"]] = orjson.dumps(
                    {"type": r["type"], "timestamp": r["created_at"].isoformat(),
                     "data": r["data"]}
                )  # fmt: skip
            target = r["endpoint_id"]
            post = partial(self._post, r, body, urls.get(target), signers.get(target, []))
            self._start(target, r, post, claimed_at, self._settings.webhook_timeout_seconds)
        for r in mails:
            mail = partial(self._mail, r, to.get(r["id"]), tenants.get(r["tenant_id"], ""))
            self._start(queue.MAIL_TARGET, r, mail, claimed_at,
                        self._settings.smtp_timeout_seconds)  # fmt: skip
        return room, len(rows)

    def _start(
        self, target: uuid.UUID, row: Any, job: Callable[[], Awaitable[dict[str, Any]]],
        claimed_at: float, timeout: float,
    ) -> None:  # fmt: skip
        """Send ``row`` (claimed, with its lease_id) by ``job`` once its endpoint and the
        process have room; its result, or its release when it is not sent, is recorded."""
        self._busy[target] += 1
        gate = self._gates.get(target)
        if gate is None:
            gate = self._gates[target] = asyncio.Semaphore(PER_ENDPOINT)
        # the send must end (timeout included) before the lease does, a margin kept for recording
        deadline = claimed_at + self._lease - timeout - LEASE_MARGIN
        task = asyncio.create_task(self._when_free(gate, job, deadline))
        self._claimed.add(task)
        task.add_done_callback(lambda t: self._finished(t, target, row))

    async def _when_free(
        self, gate: asyncio.Semaphore, job: Callable[[], Awaitable[dict[str, Any]]],
        deadline: float,
    ) -> dict[str, Any] | None:  # fmt: skip
        async with gate, self._sending:
            if time.monotonic() > deadline:  # not sent: released, due again, no attempt used
                return None
            return await job()

    def _finished(
        self, task: asyncio.Task[dict[str, Any] | None], target: uuid.UUID, row: Any
    ) -> None:
        self._claimed.discard(task)
        self._done += 1
        self._busy[target] -= 1
        if self._busy[target] <= 0:
            del self._busy[target]
            self._gates.pop(target, None)
        self._freed.set()
        if task.cancelled() or (not (exc := task.exception()) and task.result() is None):
            # shutting down, or its deadline passed waiting for room: not sent, released
            self._releases.append((row["id"], row["lease_id"]))
        elif exc is not None:  # a bug: a failed attempt, retried on the schedule
            log.error("outbound_send_crashed", error=type(exc).__name__)
            self._results.append({
                "id": row["id"], "endpoint_id": row["endpoint_id"], "ok": False, "status": None,
                "duration_ms": 0.0, "response": None, "error": "internal_error",
                "lease_id": row["lease_id"], **self._next(row, False),
            })  # fmt: skip
        else:
            self._results.append({**task.result(), "lease_id": row["lease_id"]})
        self._has_results.set()

    async def _record_forever(self) -> None:
        while True:
            await self._has_results.wait()
            if len(self._results) < RECORD_BATCH:
                await asyncio.sleep(RECORD_DELAY)
            self._has_results.clear()
            batch, self._results = self._results, []
            freed, self._releases = self._releases, []
            try:
                await self._record(batch, freed)
            except Exception as exc:  # the database may be down: keep them, try again
                log.warning("outbound_record_failed", error=type(exc).__name__, results=len(batch))
                self._results = (batch + self._results)[-RECORD_BACKLOG:]
                self._releases = (freed + self._releases)[-RECORD_BACKLOG:]
                self._has_results.set()
                await asyncio.sleep(self._settings.outbound_poll_seconds)

    async def _stop(self, recorder: asyncio.Task[None]) -> None:
        for task in list(self._claimed):
            task.cancel()
        await asyncio.gather(*self._claimed, return_exceptions=True)
        recorder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await recorder
        if self._results or self._releases:
            try:
                async with asyncio.timeout(5):
                    await self._record(self._results, self._releases)
            except Exception as exc:  # the rows stay leased: sent again after the lease
                log.warning("outbound_record_failed", error=type(exc).__name__)
            self._results, self._releases = [], []

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

    async def _post(
        self, row: Any, body: bytes, url: str | None, signers: list[Webhook]
    ) -> dict[str, Any]:
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
            self._check_literal(url)
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                status = resp.status
                while len(answer) < RESPONSE_BYTES:  # the rest is not read (nor kept alive)
                    chunk = await resp.content.read(RESPONSE_BYTES - len(answer))
                    if not chunk:
                        break
                    answer += chunk
            ok = 200 <= status < 300
            outcome = "delivered" if ok else "failed"
            error = None if ok else "http_status"
        except EndpointNotAllowed:
            ok, error, outcome = False, "address_refused", "refused"
        except TimeoutError:  # aiohttp's timeouts are TimeoutErrors too
            ok, error, outcome = False, "timeout", "timeout"
        except aiohttp.ClientConnectorError:  # refused, unreachable, not resolved
            ok, error = False, "connect_error"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            ok, error = False, _error_class(exc)
        except LookupError:
            ok, error = False, "endpoint_gone"
        seconds = time.perf_counter() - started
        DELIVERIES.labels(outcome).inc()
        DELIVERY_SECONDS.observe(seconds)
        return {
            "id": row["id"], "endpoint_id": row["endpoint_id"], "ok": ok, "status": status,
            "duration_ms": seconds * 1000, "error": error,
            "response": answer.decode("utf-8", "replace") if status else None,
            **self._next(row, ok),
        }  # fmt: skip

    def _check_literal(self, url: str) -> None:
        """An address written as the URL's host is connected to without resolving: it must
        pass the rule here, before each send (a name passes it in :class:`CheckedResolver`)."""
        verdict = self._literal.get(url)
        if verdict is None:  # the rule does not change while the process runs: judged once
            if len(self._literal) > 10_000:
                self._literal.clear()
            host = URL(url).host or ""
            address = parse_address(host)
            allowed = address is None or self._policy.address_allowed(address)
            verdict = self._literal[url] = (host, address, allowed)
        host, address, allowed = verdict
        if not allowed:
            self._policy.check_addresses(host, (address,))  # raises, and logs for operators

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

    async def _record(
        self, results: list[dict[str, Any]], releases: list[tuple[uuid.UUID, uuid.UUID]] = ()
    ) -> None:  # fmt: skip
        """Every result in one transaction: attempts, next states, endpoints' streaks; and the
        rows claimed but not sent released. A result the database refuses sinks only itself."""
        async with self._db.connection() as conn, conn.transaction():
            await queue.plan_each_time(conn)
            await queue.release(conn, list(releases))
            try:
                async with conn.transaction():  # a savepoint: a refused batch is undone alone
                    held = await queue.record(conn, results)
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
                log.error("outbound_record_refused", error=type(exc).__name__, results=len(results))
                held = await self._record_each(conn, results)
            results = [r for r in results if r["id"] in held]
            succeeded = list({r["endpoint_id"] for r in results if r["endpoint_id"] and r["ok"]})
            failed = list({r["endpoint_id"] for r in results if r["endpoint_id"] and not r["ok"]})
            disabled = await queue.endpoint_outcomes(
                conn, succeeded=succeeded, failed=failed,
                disable_after_seconds=self._settings.webhook_disable_after_days * 86400,
            )  # fmt: skip
            for endpoint in disabled:
                await self._disabled(conn, endpoint)

    async def _record_each(self, conn: Any, results: list[dict[str, Any]]) -> set[uuid.UUID]:
        """Record one result at a time, each in a savepoint; one refused is recorded again
        with nothing but its outcome (no status, answer or duration), and left leased (sent
        again after its lease) if even that is refused."""
        held: set[uuid.UUID] = set()
        for result in results:
            neutral = {**result, "status": None, "response": None, "duration_ms": 0.0,
                       "error": "unrecordable_result"}  # fmt: skip
            for attempt in (result, neutral):
                try:
                    async with conn.transaction():
                        held |= await queue.record(conn, [attempt])
                    break
                except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
                    log.error("outbound_result_refused", delivery_id=str(result["id"]),
                              error=type(exc).__name__)  # fmt: skip
        return held

    async def _disabled(self, conn: Any, endpoint: Any) -> None:
        await repository.cancel_pending(conn, [endpoint["id"]])
        since = endpoint["failing_since"].isoformat()
        await audit.record(
            conn, tenant_id=endpoint["tenant_id"], actor=SYSTEM_ACTOR,
            action="webhook.endpoint_disabled", target=f"webhook:{endpoint['id']}",
            payload={"url": service.masked_url(endpoint["url"]), "failing_since": since},
        )  # fmt: skip
        await events.publish(
            conn, tenant_id=endpoint["tenant_id"], type=events.ENDPOINT_DISABLED,
            data={"endpoint_id": str(endpoint["id"]), "url": service.masked_url(endpoint["url"]),
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
