"""Provider webhooks: an install's URL and secret, and what a delivery to it does.

A connector's manifest may declare the provider's webhooks (the definition format's
``webhooks``: a signature scheme, where a delivery's id and event type are, and per event type
the record it carries or the stream to pull). Each install gets an unguessable URL
(``/api/v1/integrations/webhooks/<token>``, the token kept encrypted with the install's
credentials and found by its SHA-256) and a signing secret (the provider's, or one the platform
makes).

A delivery is taken when its signature is the install's (401 ``bad_signature`` otherwise), its
signed time is recent (``stale``), and its id was not taken before (a replay is answered 200,
so the provider stops sending it, and not applied). Records it carries are merged into the
install's documents as external changes at once; a stream it names is pulled by a
:class:`Pulls`, which runs at most one pull per stream and install at a time and one more
after it for everything that arrived meanwhile, so a burst costs a pull or two. Every refusal
is counted and kept for the tenant to see (``GET .../webhook``).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
import structlog
from cachetools import TTLCache
from prometheus_client import Counter, Histogram

from common.crypto import KeyRing
from common.db import Database
from connector_service.credentials import service as credentials_service
from connector_service.sync.engine import NoStreams, SyncEngine, SyncRunning
from connector_service.sync.store import DocStore
from connector_service.webhooks import repository
from connector_service.webhooks.merges import Merges
from connector_service.webhooks.schemes import DEFAULT_ID, DEFAULT_TYPE, Refused, verify
from seedos_sdk.declarative.templates import Selector, TemplateProblem

log = structlog.get_logger(component="connector_service.webhooks")

PATH = "/api/v1/integrations/webhooks/"
MAX_BODY = 1024 * 1024
TOKEN_FIELD, SECRET_FIELD = "webhook.token", "webhook.secret"
DELIVERIES = Counter("seedos_webhook_deliveries_total",
                     "Provider webhook deliveries, by outcome (taken, or why refused)",
                     ["outcome"])  # fmt: skip
APPLY_SECONDS = Histogram("seedos_webhook_apply_seconds",
                          "From a delivery's arrival to its records in the document",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))  # fmt: skip


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Event:
    types: tuple[str, ...]
    stream: str | None
    record: Selector | None
    deleted: Selector | None
    pull: str | None

    def matches(self, event_type: str) -> bool:
        return any(event_type == t or (t.endswith("*") and event_type.startswith(t[:-1]))
                   for t in self.types)  # fmt: skip


@dataclass(frozen=True)
class Hooks:
    """A manifest's webhooks, compiled."""

    scheme: str
    tolerance: int
    delivery_id: tuple[str, Any]
    event_type: tuple[str, Any]
    events: tuple[Event, ...]
    keys: Mapping[str, str]  # stream -> primary key
    setup: str

    @classmethod
    def of(cls, manifest: Mapping[str, Any] | None) -> Hooks | None:
        spec = (manifest or {}).get("webhooks")
        if not isinstance(spec, Mapping):
            return None
        scheme = spec["signature"]["scheme"]

        def where(given: Mapping[str, str] | None, default: tuple[str, str]) -> tuple[str, Any]:
            kind, value = next(iter(given.items())) if given else default
            return (kind, value.lower()) if kind == "header" else (kind, Selector(value))

        def selector(value: Any) -> Selector | None:
            return Selector(value) if isinstance(value, str) else None

        events = tuple(Event(tuple(e["types"]), e.get("stream"), selector(e.get("record")),
                             selector((e.get("deleted") or {}).get("when")), e.get("pull"))
                       for e in spec.get("events") or [])  # fmt: skip
        keys = {s["name"]: s.get("primary_key") or "id" for s in manifest.get("streams") or []}
        return cls(scheme, int(spec["signature"].get("tolerance_seconds", 300)),
                   where(spec.get("delivery_id"), DEFAULT_ID[scheme]),
                   where(spec.get("event_type"), DEFAULT_TYPE[scheme]), events, keys,
                   str(spec.get("setup") or ""))  # fmt: skip


def _value(where: tuple[str, Any], headers: Mapping[str, str], document: Any) -> str | None:
    kind, how = where
    found = headers.get(how) if kind == "header" else how.search(document)
    return str(found)[:200] if found not in (None, "") else None


@dataclass
class Install:
    id: uuid.UUID
    tenant_id: uuid.UUID
    hooks: Hooks | None
    secret: str | None
    status: str


@dataclass
class Pulls:
    """Pulls of the streams webhooks name, coalesced: at most one at a time per (install,
    stream), and one more after it when events arrived meanwhile."""

    engine: SyncEngine
    running: dict[tuple[uuid.UUID, str], asyncio.Task[None]] = field(default_factory=dict)
    again: set[tuple[uuid.UUID, str]] = field(default_factory=set)

    def want(self, tenant_id: uuid.UUID, integration_id: uuid.UUID, stream: str) -> None:
        key = (integration_id, stream)
        if key in self.running:
            self.again.add(key)
            return
        self.running[key] = asyncio.create_task(self._pull(tenant_id, key))

    async def _pull(self, tenant_id: uuid.UUID, key: tuple[uuid.UUID, str]) -> None:
        try:
            while True:
                self.again.discard(key)
                try:
                    await self.engine.run(tenant_id, key[0], "webhook", only=[key[1]])
                except (SyncRunning, NoStreams) as exc:
                    log.info("webhook_pull_skipped", integration_id=str(key[0]), why=str(exc))
                except Exception as exc:
                    log.warning("webhook_pull_failed", integration_id=str(key[0]),
                                error=type(exc).__name__)  # fmt: skip
                if key not in self.again:
                    return
        finally:
            self.running.pop(key, None)

    async def aclose(self) -> None:
        for task in list(self.running.values()):
            task.cancel()
        await asyncio.gather(*self.running.values(), return_exceptions=True)


class Intake:
    """What the public webhook path does with a delivery."""

    def __init__(self, db: Database, ring: KeyRing, store: DocStore, pulls: Pulls) -> None:
        self.db, self.ring, self.store, self.pulls = db, ring, store, pulls
        self.merges = Merges(store)
        # a URL's install, its compiled webhooks and its secret, for a few seconds: a burst of
        # deliveries reads them once (a rotated secret takes effect within that time)
        self._installs: TTLCache[str, Install | None] = TTLCache(maxsize=4096, ttl=5)

    def forget(self, integration_id: uuid.UUID) -> None:
        for key, found in list(self._installs.items()):
            if found is not None and found.id == integration_id:
                self._installs.pop(key, None)

    async def _install(self, token: str) -> Install | None:
        hashed = token_hash(token)
        if hashed in self._installs:
            return self._installs[hashed]
        async with self.db.connection() as conn:
            row = await repository.install_of(conn, hashed)
            found = None
            if row is not None:
                stored = await credentials_service.load(
                    conn, self.ring, tenant_id=row["tenant_id"], integration_id=row["id"]
                )
                try:
                    hooks = Hooks.of(row["manifest"])
                except (KeyError, TemplateProblem):
                    hooks = None
                found = Install(row["id"], row["tenant_id"], hooks, stored.get(SECRET_FIELD),
                                row["status"])  # fmt: skip
        self._installs[hashed] = found
        return found

    async def receive(self, token: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """Take a delivery (``headers`` with lower-case names), or raise :class:`Refused`."""
        arrived = time.perf_counter()
        install = await self._install(token)
        if install is None:
            DELIVERIES.labels("unknown_url").inc()
            raise Refused("unknown_url", 404, "no install has this webhook URL")
        try:
            return await self._receive(install, headers, body, arrived)
        except Refused as refusal:
            DELIVERIES.labels(refusal.reason).inc()
            async with self.db.connection() as conn:
                await repository.refused(conn, install.id, refusal.reason, refusal.status,
                                         refusal.detail)  # fmt: skip
            raise

    async def _receive(self, install: Install, headers: Mapping[str, str], body: bytes,
                       arrived: float) -> dict[str, Any]:  # fmt: skip
        hooks = install.hooks
        if hooks is None:
            raise Refused("not_supported", 404, "this install's connector declares no webhooks")
        if not install.secret:
            raise Refused("no_secret", 409, "this install has no webhook secret set yet")
        if len(body) > MAX_BODY:
            raise Refused("too_large", 413, f"a delivery holds at most {MAX_BODY} bytes")
        verify(hooks.scheme, install.secret, headers, body, now=time.time(),
               tolerance=hooks.tolerance)  # fmt: skip
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise Refused("not_json", 400, "the delivery's body is not JSON") from None
        if (
            hooks.scheme == "slack"
            and isinstance(document, dict)
            and (document.get("type") == "url_verification")
        ):  # Slack asks once, signed, when the URL is set: its challenge, and nothing else
            return {"challenge": str(document.get("challenge", ""))[:200]}
        delivery = _value(hooks.delivery_id, headers, document)
        event_type = _value(hooks.event_type, headers, document) or ""
        if delivery is None:
            raise Refused("no_delivery_id", 400, "the delivery names no id")
        async with self.db.connection() as conn:
            if await repository.seen(conn, install.id, delivery):
                raise Refused("replayed", 200, f"delivery {delivery} was taken before")
        applied, pulled = await self._apply(install, hooks, event_type, document, delivery)
        if not applied:  # (a merge records the delivery in its own transaction)
            async with self.db.connection() as conn:
                await repository.taken(conn, install.id, delivery, event_type)
        DELIVERIES.labels("taken").inc()
        if applied:
            APPLY_SECONDS.observe(time.perf_counter() - arrived)
        return {"delivery": delivery, "event": event_type, "records": applied,
                "pulls": sorted(pulled)}  # fmt: skip

    async def _apply(self, install: Install, hooks: Hooks, event_type: str, document: Any,
                     delivery: str) -> tuple[int, set[str]]:  # fmt: skip
        """Apply what the event carries (records merged as the external system's changes, so
        never echoed back, with the deliveries arriving meanwhile: :mod:`merges`) and ask for
        the pulls it names; (records applied, streams)."""
        applied, pulled = 0, set()
        for event in hooks.events:
            if not event.matches(event_type):
                continue
            if event.stream and event.record is not None:
                record = event.record.search(document)
                pk = hooks.keys.get(event.stream)
                if pk is not None and isinstance(record, dict) and record.get(pk) not in (
                    None, ""):  # fmt: skip
                    gone = event.deleted is not None and bool(event.deleted.search(document))
                    await self.merges.apply(install.id, event.stream, pk, key=str(record[pk]),
                                            record=None if gone else record, delivery=delivery,
                                            event_type=event_type)  # fmt: skip
                    applied += 1
            if event.pull and event.pull in hooks.keys:
                self.pulls.want(install.tenant_id, install.id, event.pull)
                pulled.add(event.pull)
        return applied, pulled


# ------------------------------------------------------------------------------ the tenant's side


async def endpoint(
    conn: asyncpg.Connection, ring: KeyRing, *, tenant_id: uuid.UUID, integration_id: uuid.UUID,
    rotate: bool = False,
) -> str:  # fmt: skip
    """The install's webhook token (made the first time, or anew with ``rotate``)."""
    stored = await credentials_service.load(
        conn, ring, tenant_id=tenant_id, integration_id=integration_id
    )
    token = stored.get(TOKEN_FIELD)
    if token is None or rotate or not await repository.has_endpoint(conn, integration_id):
        token = token if token and not rotate else secrets.token_urlsafe(32)
        await credentials_service.store(conn, ring, tenant_id=tenant_id,
                                        integration_id=integration_id,
                                        secrets={TOKEN_FIELD: token})  # fmt: skip
        await repository.set_endpoint(conn, integration_id, token_hash(token))
    return token


async def set_secret(
    conn: asyncpg.Connection, ring: KeyRing, *, tenant_id: uuid.UUID, integration_id: uuid.UUID,
    secret: str,
) -> None:  # fmt: skip
    await credentials_service.store(conn, ring, tenant_id=tenant_id,
                                    integration_id=integration_id,
                                    secrets={SECRET_FIELD: secret})  # fmt: skip
