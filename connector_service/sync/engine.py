"""Sync runs: pull from the connector into the shards, push platform changes out.

Pull reads every stream from its saved cursor: a first pull is built straight into shards
(:mod:`loads`); later pages are merged into the shards that hold their records (:mod:`pulls`),
each page durable with the cursor after it, so a cursor never runs ahead of a durable merge.
A field with a platform change still waiting in the outbox keeps the platform's value (it is
about to be written to the external system); every other field takes the external value.

Push sends each record's latest state from the durable outbox through the connector's write
endpoint, a batch per stream. Per record: written → gone from the outbox; worth retrying →
tried again after an exponential, fully jittered wait (tenacity's), until the retry budget is
spent; refused → a dead letter with the reason, which the API lists, retries or discards.
Changes that came from the external system never enter the outbox, so nothing is echoed back.

One run at a time per installed connector, across replicas: a run holds a session-level
advisory lock on a connection of its own for as long as it lasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog
from prometheus_client import Counter, Gauge, Histogram
from tenacity import RetryCallState, wait_random_exponential

from common.db import Database
from common.errors import Conflict
from connector_service.integrations import calls
from connector_service.manager import errors
from connector_service.manager.manager import ConnectorManager, Target
from connector_service.outbound import events as outbound_events
from connector_service.sync import access, loads, pulls, repository
from connector_service.sync import records as rec
from connector_service.sync.document import LiveDoc
from connector_service.sync.service import streams as declared_streams
from connector_service.sync.store import DocStore

log = structlog.get_logger(component="connector_service.sync")

RUNS = Counter("seedos_sync_runs_total", "Sync runs by outcome.", ["service", "outcome"])
RUN_SECONDS = Histogram(
    "seedos_sync_run_duration_seconds", "Duration of sync runs.", ["service"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)  # fmt: skip
PULLED = Counter("seedos_sync_records_pulled_total", "Records merged from connectors.", ["service"])
PUSHED = Counter("seedos_sync_records_pushed_total", "Records written to connectors.", ["service"])
RETRIES = Counter(
    "seedos_sync_push_retries_total", "Pushes scheduled for another try.", ["service"]
)
DEAD = Counter("seedos_sync_dead_letters_total", "Changes dead-lettered.", ["service"])
OUTBOX_DEPTH = Gauge(
    "seedos_sync_outbox_depth", "Changes waiting in the outbox (last seen).",
    multiprocess_mode="mostrecent",
)  # fmt: skip

# Full jitter: a random wait between 0 and min(cap, 1 s * 2^attempt).
BACKOFF = wait_random_exponential(multiplier=1, max=300)


class SyncRunning(Conflict):
    code, title = "sync_running", "A sync run is in progress"


class NoStreams(Conflict):
    code, title = "nothing_to_sync", "This connector has no streams"


def backoff_seconds(attempt: int) -> float:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    return BACKOFF(state)


class SyncEngine:
    def __init__(
        self,
        db: Database,
        store: DocStore,
        manager: ConnectorManager,
        *,
        push_batch: int = 200,
        max_attempts: int = 8,
        retry_budget: timedelta = timedelta(hours=24),
    ) -> None:
        self.db = db
        self.store = store
        self.manager = manager
        self.push_batch = push_batch
        self.max_attempts = max_attempts
        self.retry_budget = retry_budget
        self.running: dict[uuid.UUID, asyncio.Task[Any]] = {}

    # ------------------------------------------------------------------ runs

    def start(self, tenant_id: uuid.UUID, integration_id: uuid.UUID, kind: str) -> None:
        """Start a run in the background (``SyncRunning`` if this process runs one already)."""
        if integration_id in self.running:
            raise SyncRunning("a sync run of this install is in progress")
        task = asyncio.create_task(self._guarded_run(tenant_id, integration_id, kind))
        self.running[integration_id] = task
        task.add_done_callback(lambda _t: self.running.pop(integration_id, None))

    async def _guarded_run(self, tenant_id: uuid.UUID, integration_id: uuid.UUID, kind: str) -> Any:
        try:
            return await self.run(tenant_id, integration_id, kind)
        except SyncRunning:
            return None
        except Exception as exc:
            log.warning("sync_run_failed", integration_id=str(integration_id),
                        error=type(exc).__name__, detail=str(exc)[:300])  # fmt: skip
            return None

    async def run(
        self, tenant_id: uuid.UUID, integration_id: uuid.UUID, kind: str,
        only: Collection[str] | None = None,
    ) -> uuid.UUID:  # fmt: skip
        """A sync run: every stream pulled (``only`` those named: a webhook's), then the
        outbox pushed."""
        target = await calls.load_target(self.db, tenant_id, integration_id)
        streams = [s for s in declared_streams(target).values()
                   if only is None or s["name"] in only]  # fmt: skip
        if not streams:
            raise NoStreams(f"{target.service_name} declares no streams")
        async with self._run_lock(integration_id, wait=0 if kind == "scheduled" else 30) as pid:
            async with self.db.connection() as conn:
                if kind == "resync":
                    await repository.reset_cursors(conn, integration_id)
                run_id = await repository.start_run(conn, integration_id, kind, pid)
            started = time.perf_counter()
            counts: dict[str, Any] = {"pulled": 0, "deleted": 0, "pushed": 0}
            # first loads' counts per stream, for records.changed at the run's end (merged
            # pages publish theirs as they commit: _merge_pages)
            counts["streams"] = {}
            counts["run_id"] = run_id
            outcome, error = "succeeded", None
            try:
                for stream in streams:
                    await self._pull(target, stream, counts)
                counts["pushed"] += await self.push(target)
            except Exception as exc:
                outcome, error = "failed", getattr(exc, "detail", None) or str(exc)
                log.warning("sync_run_failed", integration_id=str(integration_id),
                            error=type(exc).__name__, detail=str(error)[:300])  # fmt: skip
            finally:
                async with self.db.connection() as conn, conn.transaction():
                    await repository.finish_run(
                        conn, run_id, outcome=outcome, error=error, pulled=counts["pulled"],
                        deleted=counts["deleted"], pushed=counts["pushed"],
                    )  # fmt: skip
                    await _publish_run(conn, target, run_id, kind, outcome, error, counts)
                RUNS.labels(target.service_name, outcome).inc()
                RUN_SECONDS.labels(target.service_name).observe(time.perf_counter() - started)
        try:  # the run is over (and so reported); now fold the log if it grew past the limit
            await self.store.compact_install(integration_id)
        except Exception as exc:
            log.warning("sync_compaction_failed", integration_id=str(integration_id),
                        error=type(exc).__name__)  # fmt: skip
        return run_id

    @contextlib.asynccontextmanager
    async def _run_lock(self, integration_id: uuid.UUID, wait: float = 0) -> AsyncIterator[int]:
        """Held for a whole run, on a connection of its own, released before it goes back.
        ``wait``: how long to keep trying while someone else holds it (the push loop holds it
        for moments). Yields the database session's pid, which the run row records."""
        key = f"syncrun:{integration_id}"
        deadline = time.monotonic() + wait
        async with self.db.connection() as conn:
            while not await conn.fetchval(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key
            ):
                if time.monotonic() >= deadline:
                    raise SyncRunning("a sync run of this install is in progress")
                await asyncio.sleep(0.1)
            try:
                yield conn.get_server_pid()
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)

    async def is_running(self, integration_id: uuid.UUID) -> bool:
        """Whether a run of this install is in progress on some replica: its row says running
        and the database session it recorded still holds the run lock (a row left running by
        a process that died does not; the next run marks it interrupted)."""
        async with self.db.connection() as conn:
            return bool(await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM sync_runs r JOIN pg_locks l"
                " ON l.pid = r.backend_pid AND l.locktype = 'advisory' AND l.granted"
                " AND l.objsubid = 1"
                " AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended($2, 0)"
                " WHERE r.integration_id = $1 AND r.outcome = 'running')",
                integration_id, f"syncrun:{integration_id}",
            ))  # fmt: skip

    async def catch_up_and_push(self, target: Target) -> int:
        """What the push loop does for an install with changes due: pull the streams they
        belong to first (so what is written is merged with the external system's latest
        state, for connectors whose writes replace whole records), then push. Skipped while
        a run holds the install (the run pushes itself)."""
        async with self.db.connection() as conn:
            rows = await repository.due(conn, target.id, self.push_batch)
        names = {row["stream"] for row in rows}
        if not names:
            return 0
        try:
            async with self._run_lock(target.id):
                counts = {"pulled": 0, "deleted": 0, "pushed": 0}
                try:
                    for stream in declared_streams(target).values():
                        if stream["name"] in names:
                            await self._pull(target, stream, counts)
                except errors.ConnectorCallError as exc:
                    # the external system cannot be read: the changes wait, backing off
                    await self._settle(target, [(row, "retry", exc.detail or exc.title)
                                                for row in rows])  # fmt: skip
                    return 0
                pushed = await self.push(target)
            await self.store.compact_install(target.id)
            return pushed
        except SyncRunning:
            return 0

    # ------------------------------------------------------------------ pull

    async def _pull(self, target: Target, stream: Mapping[str, Any], counts: dict) -> None:
        """One stream from its cursor: a first load (:mod:`loads`) or page by page."""
        name, pk = stream["name"], stream.get("primary_key") or "id"
        await self._pull_stream(target, name, pk, counts)

    async def _pull_stream(self, target: Target, name: str, pk: str, counts: dict) -> None:
        async with self.db.connection() as conn:
            cursor = (await repository.cursors(conn, target.id)).get(name)
            first = await loads.first_pull(conn, target.id, name, cursor,
                                           small=self.store.max_records)  # fmt: skip
        if first is not None:
            start = first["cursor"] if first is not True else None
            load = loads.FirstLoad(self.store, self.db, target.id, name, pk, first)
            before = (counts["pulled"], counts["deleted"])
            try:
                async with contextlib.aclosing(self._pages(target, name, start)) as pages:
                    await load.run(pages, counts)
            finally:
                if "streams" in counts:  # a run's: published at its end (loads.py commits)
                    _count_changes(counts, name, counts["pulled"] - before[0],
                                   counts["deleted"] - before[1])  # fmt: skip
            PULLED.labels(target.service_name).inc(counts["pulled"] - before[0])
            return
        async with contextlib.aclosing(self._pages(target, name, cursor)) as pages:
            await self._merge_pages(target, name, pk, pages, counts)

    async def _merge_pages(
        self, target: Target, name: str, pk: str, pages: AsyncIterator[Mapping[str, Any]],
        counts: dict,
    ) -> None:  # fmt: skip
        async for page in pages:
            page_records = page.get("records") or []
            page_deleted = [str(d) for d in page.get("deleted") or []]
            save = pulls.cursor_saver(target.id, name, page.get("next_cursor"))
            if page_records or page_deleted:
                # an event per merged page, committed with it (a crash after the commit loses
                # none); a run's names the run
                changed = _page_changed(name, pk, page_records, page_deleted)
                if "run_id" in counts:
                    changed["run_id"] = str(counts["run_id"])
                save = _publishing(save, target, changed)
            await pulls.merge(self.store, target.id, name, pk, page_records, page_deleted, save)
            counts["pulled"] += len(page_records)
            counts["deleted"] += len(page_deleted)
            PULLED.labels(target.service_name).inc(len(page_records))

    async def _pages(
        self, target: Target, name: str, cursor: str | None
    ) -> AsyncIterator[Mapping[str, Any]]:
        """The stream's pages from ``cursor``, the next one read while the caller merges this
        one: the connector and the external system work while this process builds documents
        (a cursor is still saved only with the merge of the page it follows)."""
        page = await self.manager.read(target, name, cursor)
        ahead: asyncio.Task[Any] | None = None
        try:
            while True:
                if page.get("has_more"):
                    ahead = asyncio.create_task(
                        self.manager.read(target, name, page.get("next_cursor"))
                    )
                    await asyncio.sleep(0)  # the request leaves before this page is merged
                yield page
                if ahead is None:
                    return
                page, ahead = await ahead, None
        finally:
            if ahead is not None:
                ahead.cancel()
                with contextlib.suppress(BaseException):
                    await ahead

    # ------------------------------------------------------------------ push

    async def push(self, target: Target) -> int:
        """Write what is due in the outbox; returns the records written."""
        streams = declared_streams(target)
        written = 0
        while True:
            async with self.db.connection() as conn:
                rows = await repository.due(conn, target.id, self.push_batch)
                OUTBOX_DEPTH.set((await repository.outbox_counts(conn, target.id))["pending"])
            if not rows:
                return written
            by_stream: dict[str, list[Any]] = {}
            for row in rows:
                by_stream.setdefault(row["stream"], []).append(row)
            for name, batch in by_stream.items():
                written += await self._push_batch(target, streams.get(name), name, batch)
            if len(rows) < self.push_batch:
                return written

    async def _push_batch(
        self, target: Target, stream: Mapping[str, Any] | None, name: str, batch: list[Any]
    ) -> int:
        if stream is None or not stream.get("writable", True):
            why = "unknown stream" if stream is None else "the stream is read-only"
            await self._settle(target, [(row, "dead", why) for row in batch])
            return 0
        pk = stream.get("primary_key") or "id"
        integers = rec.field_kinds(stream.get("schema") or {})
        upserts, deletes, upserted, deleted = [], [], [], []
        held = await access.read(self.store, target.id,
                                 [rec.key(name, row["record_key"]) for row in batch])  # fmt: skip
        for row in batch:
            fields = held[rec.key(name, row["record_key"])]
            if fields is None:
                deletes.append(row["record_key"])
                deleted.append(row)
            else:
                record = rec.from_fields(fields, integers)
                record.setdefault(pk, row["record_key"])
                upserts.append(record)
                upserted.append(row)
        ordered = upserted + deleted  # results come back upserts first, then deletes
        try:
            answer = await self.manager.write(target, name, upserts, deletes)
        except errors.ConnectorRejected as exc:
            if len(batch) > 1:  # one bad record refused the batch: find it
                total = 0
                for row in batch:
                    total += await self._push_batch(target, stream, name, [row])
                return total
            await self._settle(target, [(batch[0], "dead", exc.detail or exc.title)])
            return 0
        except errors.ConnectorCallError as exc:
            await self._settle(target, [(row, "retry", exc.detail or exc.title) for row in batch])
            return 0
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != len(ordered):
            await self._settle(target, [(row, "retry", "the write answer lists other records")
                                        for row in batch])  # fmt: skip
            return 0
        verdicts = []
        for row, result in zip(ordered, results, strict=True):
            if result.get("ok"):
                verdicts.append((row, "done", ""))
            elif result.get("category") == "retryable":
                verdicts.append((row, "retry", str(result.get("error") or "retryable")))
            else:
                verdicts.append((row, "dead", str(result.get("error") or "refused")))
        await self._settle(target, verdicts)
        # records the platform made that the external system created under keys of its own:
        # moved to those keys (after _settle, so that a change since the write is what stays)
        moves = [(row["record_key"], result["record"])
                 for row, result in zip(upserted, results, strict=False)
                 if result.get("ok") and isinstance(result.get("record"), dict)
                 and result["record"].get(pk) not in (None, "")
                 and str(result["record"][pk]) != row["record_key"]]  # fmt: skip
        if moves:
            await pulls.adopt(self.store, target.id, name, pk, moves)
        done = sum(1 for _, v, _ in verdicts if v == "done")
        PUSHED.labels(target.service_name).inc(done)
        return done

    async def _settle(self, target: Target, verdicts: list[tuple[Any, str, str]]) -> None:
        now = datetime.now().astimezone()
        async with self.db.connection() as conn, conn.transaction():
            for row, verdict, error in verdicts:
                if verdict == "done":
                    await repository.done(conn, row["id"], row["version"])
                    continue
                attempt = row["attempts"] + 1
                first = row["first_failed_at"] or now
                spent = attempt >= self.max_attempts or now - first >= self.retry_budget
                if verdict == "dead" or spent:
                    reason = error if verdict == "dead" else f"retry budget spent: {error}"
                    await repository.dead(conn, row["id"], row["version"], error=reason)
                    DEAD.labels(target.service_name).inc()
                    await outbound_events.publish(
                        conn, tenant_id=target.tenant_id, type=outbound_events.DEAD_LETTER_ADDED,
                        integration_id=target.id, data={"stream": row["stream"],
                        "record_key": row["record_key"], "error": reason[:500]},
                    )  # fmt: skip
                else:
                    await repository.retry_later(conn, row["id"], row["version"],
                                                 wait_seconds=backoff_seconds(attempt),
                                                 error=error)  # fmt: skip
                    RETRIES.labels(target.service_name).inc()


def _count_changes(counts: dict[str, Any], stream: str, upserted: int, deleted: int) -> None:
    seen = counts["streams"].setdefault(stream, {"n_up": 0, "n_gone": 0})
    seen["n_up"] += upserted
    seen["n_gone"] += deleted


def _page_changed(stream: str, pk: str, records: list[Any], deleted: list[str]) -> dict[str, Any]:
    """records.changed of one merged page: the counts whole, at most MAX_KEYS keys of each."""
    most = outbound_events.MAX_KEYS
    keys = [str(r.get(pk)) for r in records[:most] if isinstance(r, Mapping)]
    changed = outbound_events.records_changed(stream=stream, origin="pull", upserted=keys,
                                              deleted=deleted[:most])  # fmt: skip
    changed.update(upserted=len(records), deleted=len(deleted),
                   truncated=len(records) > most or len(deleted) > most)  # fmt: skip
    return changed


def _publishing(
    save: pulls.SaveCursor, target: Target, changed: dict[str, Any]
) -> pulls.SaveCursor:
    """``save`` and the records.changed event ``changed``, in the merge's last transaction."""

    async def both(conn: Any, update_id: int) -> None:
        await save(conn, update_id)
        await outbound_events.publish(conn, tenant_id=target.tenant_id,
                                      type=outbound_events.RECORDS_CHANGED, data=changed,
                                      integration_id=target.id)  # fmt: skip

    return both


async def _publish_run(
    conn: Any, target: Target, run_id: uuid.UUID, kind: str, outcome: str, error: str | None,
    counts: dict[str, Any],
) -> None:  # fmt: skip
    """The run's events, in the transaction that records its end: sync.finished or sync.failed
    with the run's counts, and one records.changed per stream a first load built (counts, no
    keys; the load's pages become visible together, in loads.py). Merged pages published
    their own records.changed as they committed."""
    data = {"run_id": str(run_id), "kind": kind, "service_name": target.service_name,
            "connector_name": target.connector_name, "pulled": counts["pulled"],
            "deleted": counts["deleted"], "pushed": counts["pushed"]}  # fmt: skip
    if error is not None:
        data["error"] = str(error)[:500]
    type_ = outbound_events.SYNC_FINISHED if outcome == "succeeded" else outbound_events.SYNC_FAILED
    await outbound_events.publish(conn, tenant_id=target.tenant_id, type=type_, data=data,
                                  integration_id=target.id)  # fmt: skip
    for stream, seen in counts["streams"].items():
        if not (seen["n_up"] or seen["n_gone"]):
            continue
        changed = outbound_events.records_changed(stream=stream, origin="pull", run_id=run_id)
        changed.update(upserted=seen["n_up"], deleted=seen["n_gone"],
                       truncated=bool(seen["n_up"] or seen["n_gone"]))  # fmt: skip
        await outbound_events.publish(conn, tenant_id=target.tenant_id,
                                      type=outbound_events.RECORDS_CHANGED, data=changed,
                                      integration_id=target.id)  # fmt: skip


__all__ = ["LiveDoc", "NoStreams", "SyncEngine", "SyncRunning", "backoff_seconds"]
