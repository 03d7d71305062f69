"""Replaying work queued offline: each item is the public API call it names, made as the
caller, once.

- **What may be replayed**: :data:`ALLOWED`, the integration operations a person does from the
  dashboard (install, change the settings, enable, disable, check, run an action or a sync,
  setup progress, uninstall). Not credentials: secrets do not wait in an offline queue.
- **Once**: each item's Idempotency-Key is claimed in ``idempotency_keys`` before it runs
  (:func:`common.idempotency.run_once`), in the client's own scope ``offline:<client id>``, and
  its answer kept: a repeat gets the first answer (``duplicate``), a concurrent one is told to
  come back (``retry_later``). The key
  goes on to the service too, which keeps its own for installs and actions.
- **In order, per client**: a client's items run by sequence number, each after the previous
  one completed; a number already completed is a ``duplicate``, and a gap holds the rest of
  that client's items (``out_of_sequence``, with the number expected). A client belongs to the
  credential that first used it: another's items are ``rejected``.
- **Never wedged**: a permanent failure (a 4xx) completes its item (``rejected``, or
  ``conflict`` when its ``If-Match`` no longer holds, with the current state); a transient one
  (429, 5xx, the service down) stops the whole batch there (``retry_later``, the rest
  ``not_attempted``) with the seconds to wait.
- **Rate-limited per item**: each item run costs what its API call would, from the same
  buckets (the request itself paid for the first); an item the limits refuse stops the batch
  there as ``retry_later`` with the buckets' wait, so a batch is no way around the limits.
- **Audited**: every completed item, as ``offline.replayed`` with the client's id, number and
  timestamp and the outcome, in the transaction that completes it.

Transactions are explicit: claiming a key, calling the service (no connection held) and
completing the item are three steps, so a replay that dies half-way is retried safely.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from common import audit, idempotency
from common.db import Database
from common.errors import (
    Forbidden,
    GatewayTimeout,
    InvalidRequest,
    SeedosError,
    ServiceUnavailable,
    error_body,
)
from common.internal_auth import Principal, TokenSigner
from gateway.offline import repository
from gateway.offline.schemas import BatchResult, ItemResult, OfflineItem, Outcome
from gateway.proxy import Upstream, call

UPSTREAM = "connector_service"
_ID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_BASE = "/api/v1/integrations"
ALLOWED: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (method, re.compile(pattern))
    for method, pattern in (
        ("POST", _BASE),  # install
        ("PATCH", rf"{_BASE}/{_ID}"),  # settings (with If-Match)
        ("DELETE", rf"{_BASE}/{_ID}"),  # uninstall
        ("POST", rf"{_BASE}/{_ID}/(?:enable|disable|check)"),
        ("POST", rf"{_BASE}/{_ID}/actions/[A-Za-z0-9_.-]{{1,100}}"),
        ("POST", rf"{_BASE}/{_ID}/sync/run"),
        ("PUT", rf"{_BASE}/{_ID}/setup-progress"),
    )
)
RETRY_AFTER_DEFAULT = 2


class ClientNotYours(Forbidden):
    code, title = "offline_client_not_yours", "Another user's or key's offline queue"


class NotAllowed(InvalidRequest):
    code, title = "offline_operation_not_allowed", "Not an operation that may be queued offline"


def allowed(method: str, path: str, body: Any = None) -> bool:
    """Whether the call may be queued: one of :data:`ALLOWED`, and not an install carrying
    secrets (its body's ``credentials``: they are set once online, never queued)."""
    if method == "POST" and path == _BASE and isinstance(body, dict) and body.get("credentials"):
        return False
    return any(m == method and p.fullmatch(path) for m, p in ALLOWED)


@dataclass
class Replayer:
    db: Database
    upstream: Upstream
    signer: TokenSigner
    secret: bytes  # the idempotency fingerprints' key
    principal: Principal
    request_id: str
    # one more call's rate-limit tokens: None when taken, else the seconds to wait
    charge: Callable[[], Awaitable[int | None]] | None = None
    _paid: int = field(default=1, init=False)  # the request's own tokens pay for one item

    async def batch(self, items: list[OfflineItem]) -> BatchResult:
        results: dict[int, ItemResult] = {}
        order = {id(item): n for n, item in enumerate(items)}
        stopped: int | None = None
        for client_id, queue in _by_client(items).items():
            stopped = await self._client(client_id, queue, results, order)
            if stopped is not None:
                break
        for n, item in enumerate(items):
            if n not in results:
                results[n] = _result(item, Outcome.not_attempted)
        return BatchResult(results=[results[n] for n in range(len(items))], retry_after=stopped)

    async def _client(
        self,
        client_id: str,
        queue: list[OfflineItem],
        results: dict[int, ItemResult],
        order: Mapping[int, int],
    ) -> int | None:
        """Run one client's items in sequence order; the seconds to wait if the batch must
        stop here (a transient failure), else None."""
        async with self.db.connection() as conn:
            row = await repository.client(
                conn, tenant_id=self.principal.tenant_id, client_id=client_id,
                subject=self.principal.subject,
            )  # fmt: skip
        if row["subject"] != self.principal.subject:
            refusal = ClientNotYours("this client's queue belongs to another user or key")
            for item in queue:
                results[order[id(item)]] = _refused(item, refusal)
            return None
        last = row["last_seq"]
        for item in queue:
            n = order[id(item)]
            if item.seq <= last:
                results[n] = await self._duplicate(item)
                continue
            if item.seq > last + 1:
                for rest in queue[queue.index(item) :]:
                    results[order[id(rest)]] = _result(
                        rest, Outcome.out_of_sequence, expected_seq=last + 1
                    )
                return None
            if (wait := await self._afford()) is not None:
                results[n] = _result(item, Outcome.retry_later, status=429)
                return wait
            result, wait = await self._run(item)
            results[n] = result
            if wait is not None:
                return wait
            last = item.seq
        return None

    async def _afford(self) -> int | None:
        """The next item's rate-limit tokens: None when it may run, else the seconds to wait."""
        if self._paid:
            self._paid -= 1
            return None
        return None if self.charge is None else await self.charge()

    async def _duplicate(self, item: OfflineItem) -> ItemResult:
        """An item whose number completed before: the answer kept with its key (a refusal's
        status and problem included, so a client that lost the first answer still learns it
        was refused); an operation that may not be queued is refused again, as the first time."""
        if not allowed(item.method, item.path, item.body):
            return _refused(item, NotAllowed(f"{item.method} {item.path} cannot be queued offline"))
        async with self.db.connection() as conn:
            kept = await repository.kept_answer(
                conn,
                tenant_id=self.principal.tenant_id,
                client_id=item.client_id,
                key=item.idempotency_key,
            )
        if kept is None:
            return _result(item, Outcome.duplicate)
        return _result(item, Outcome.duplicate, status=kept["response_status"],
                       answer=kept["response_body"])  # fmt: skip

    async def _run(self, item: OfflineItem) -> tuple[ItemResult, int | None]:
        """One item, once: its result, and the seconds to wait when the batch must stop."""
        if not allowed(item.method, item.path, item.body):
            refusal = NotAllowed(f"{item.method} {item.path} cannot be queued offline")
            await self._complete(item, Outcome.rejected, refusal.status)
            return _refused(item, refusal), None
        wait: list[int] = []

        async def call() -> idempotency.Answer:
            status, body, retry_after = await self._call(item)
            transient = status in (408, 425, 429) or status >= 500 or _in_progress(status, body)
            if transient:
                wait.append(retry_after or RETRY_AFTER_DEFAULT)
            return idempotency.Answer(status, body, final=not transient)

        request_hash = idempotency.fingerprint(
            repository.SCOPE, item.method, item.path, item.body, item.if_match,
            secret=self.secret,
        )  # fmt: skip

        async def finish(conn: Any, answer: idempotency.Answer) -> None:
            # the item completed in the transaction that keeps its answer
            await self._completed(conn, item, _outcome(answer), answer.status)

        try:
            answer = await idempotency.run_once(
                self.db, tenant_id=self.principal.tenant_id,
                scope=repository.scope(item.client_id),
                key=item.idempotency_key, request_hash=request_hash, operation=call,
                finish=finish,
            )  # fmt: skip
        except idempotency.InProgress:  # the same item, replayed by another request right now
            return _result(item, Outcome.retry_later), 1
        except idempotency.KeyReused as exc:
            await self._complete(item, Outcome.rejected, exc.status)
            return _refused(item, exc), None
        if wait:
            return _result(item, Outcome.retry_later, status=answer.status,
                           answer=answer.body), wait[0]  # fmt: skip
        if answer.replayed:  # completed by an earlier replay whose answer never arrived
            await self._complete(item, Outcome.duplicate, answer.status)
            return _result(item, Outcome.duplicate, status=answer.status,
                           answer=answer.body), None  # fmt: skip
        return _result(item, _outcome(answer), status=answer.status, answer=answer.body), None

    async def _call(self, item: OfflineItem) -> tuple[int, Any, int | None]:
        """The item as the API call it names, made as the caller: status, JSON answer, and
        the Retry-After the service sent. A service that cannot be reached answers 503."""
        headers = {"idempotency-key": item.idempotency_key}
        if item.if_match is not None:
            headers["if-match"] = item.if_match
        try:
            answered = await call(
                self.upstream, self.signer, self.principal, item.method, item.path,
                request_id=self.request_id, body=item.body, headers=headers,
            )  # fmt: skip
        except (ServiceUnavailable, GatewayTimeout) as error:
            return error.status, error_body(error), RETRY_AFTER_DEFAULT
        return answered.status, answered.body, answered.retry_after

    async def _complete(self, item: OfflineItem, outcome: Outcome, status: int | None) -> None:
        async with self.db.connection() as conn, conn.transaction():
            await self._completed(conn, item, outcome, status)

    async def _completed(
        self, conn: Any, item: OfflineItem, outcome: Outcome, status: int | None
    ) -> None:
        """The item's number completed for its client, and audited, in ``conn``'s
        transaction."""
        moved = await repository.complete(conn, tenant_id=self.principal.tenant_id,
                                          client_id=item.client_id, seq=item.seq)  # fmt: skip
        if moved:  # else another replay of the queue completed it (and audited it)
            await audit.record(
                conn, tenant_id=self.principal.tenant_id, actor=self.principal.subject,
                action="offline.replayed", target=f"offline_client:{item.client_id}",
                payload={"client_id": item.client_id, "seq": item.seq,
                         "client_ts": item.client_ts.isoformat(), "method": item.method,
                         "path": item.path, "outcome": outcome.value, "status": status},
                request_id=self.request_id,
            )  # fmt: skip


def _by_client(items: list[OfflineItem]) -> dict[str, list[OfflineItem]]:
    """Each client's items (in the order clients first appear), by sequence number; an item
    repeating a number already in the batch comes after it (and is its duplicate)."""
    out: dict[str, list[OfflineItem]] = {}
    for item in items:
        out.setdefault(item.client_id, []).append(item)
    return {client: sorted(queue, key=lambda i: i.seq) for client, queue in out.items()}


def _outcome(answer: idempotency.Answer) -> Outcome:
    if 200 <= answer.status < 300:
        return Outcome.applied
    return Outcome.conflict if answer.status == 412 else Outcome.rejected


def _in_progress(status: int, body: Any) -> bool:
    return status == 409 and isinstance(body, dict) and body.get("code", "").endswith("in_progress")


def _refused(item: OfflineItem, refusal: SeedosError) -> ItemResult:
    return _result(item, Outcome.rejected, status=refusal.status, answer=error_body(refusal))


def _result(item: OfflineItem, outcome: Outcome, **fields: Any) -> ItemResult:
    return ItemResult(client_id=item.client_id, seq=item.seq,
                      idempotency_key=item.idempotency_key, outcome=outcome, **fields)  # fmt: skip


def replayer(state: Any, principal: Principal, scope: Any) -> Replayer:
    """The app's replayer for one request (``scope``: the request's, whose rate-limit buckets
    each further item is charged to)."""
    settings = state.settings
    secret = settings.idempotency_key.get_secret_value().encode()

    async def charge() -> int | None:
        return await state.rate_limiter.another(scope, principal)

    return Replayer(db=state.db, upstream=state.upstreams[UPSTREAM], signer=state.proxy.signer,
                    secret=secret, principal=principal, request_id=scope["state"]["request_id"],
                    charge=charge)  # fmt: skip
