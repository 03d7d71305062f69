"""The rules of outbound webhook endpoints: URLs under the egress rule, signing secrets made
here, shown once and kept encrypted, rotation with a grace period, replays and test events.
Functions take a connection in the caller's transaction; none raises HTTP errors."""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from common import audit
from common.crypto import Envelope, KeyRing
from common.endpoints import EndpointPolicy
from common.errors import Conflict, NotFound
from connector_service.outbound import events, repository

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32  # the spec asks for 24 to 64


class WebhookEndpointNotFound(NotFound):
    code, title = "webhook_endpoint_not_found", "Webhook endpoint not found"


class DeliveryNotFound(NotFound):
    code, title = "webhook_delivery_not_found", "Webhook delivery not found"


class EndpointDisabled(Conflict):
    code, title = "webhook_endpoint_disabled", "Webhook endpoint disabled"


MASK = "***"


def masked_url(url: str) -> str:
    """``url`` with the values of its query string and any password in it replaced by
    :data:`MASK` (a receiver's token often rides there): what audit entries, events, emails
    and non-admins get. Admins managing the endpoint see the URL whole."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:{MASK}@{hostport}" if ":" in userinfo else netloc
    query = urlencode([(k, MASK) for k, _ in parse_qsl(parts.query, keep_blank_values=True)],
                      safe="*")  # fmt: skip
    if parts.query and not query:  # no key=value pairs: a bare token
        query = MASK
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment and MASK))


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _aad(tenant_id: uuid.UUID, endpoint_id: uuid.UUID) -> bytes:
    return f"seedos-outbound-secret|{tenant_id}|{endpoint_id}".encode()


def open_secret(ring: KeyRing, row: Any) -> str:
    """The plain ``whsec_...`` of a stored secret row (with tenant_id and endpoint_id)."""
    envelope = Envelope(row["key_id"], row["wrapped_key"], row["nonce"], row["ciphertext"])
    return ring.decrypt(envelope, aad=_aad(row["tenant_id"], row["endpoint_id"])).decode()


async def check_url(policy: EndpointPolicy, url: str) -> None:
    """Refuse (EndpointNotAllowed, a 422) a URL outside the egress rule, resolving its host
    now; it is resolved and checked again on every attempt, when connecting."""
    await policy.check(url, fixed_path=False)


async def _store_secret(
    conn: asyncpg.Connection, ring: KeyRing, endpoint: Any, *, grace_seconds: float
) -> str:
    secret = new_secret()
    envelope = ring.encrypt(secret.encode(), aad=_aad(endpoint["tenant_id"], endpoint["id"]))
    await repository.add_secret(
        conn, endpoint["id"], key_id=envelope.key_id, wrapped_key=envelope.wrapped_key,
        nonce=envelope.nonce, ciphertext=envelope.ciphertext, grace_seconds=grace_seconds,
    )  # fmt: skip
    return secret


async def create(
    conn: asyncpg.Connection,
    ring: KeyRing,
    policy: EndpointPolicy,
    *,
    tenant_id: uuid.UUID,
    actor: str,
    url: str,
    event_types: list[str],
    description: str,
) -> tuple[Any, str]:
    """A new endpoint and its signing secret (returned this once)."""
    await check_url(policy, url)
    endpoint = await repository.create_endpoint(
        conn, tenant_id=tenant_id, url=url, description=description, event_types=event_types
    )
    secret = await _store_secret(conn, ring, endpoint, grace_seconds=0)
    await audit.record(
        conn, tenant_id=tenant_id, actor=actor, action="webhook.endpoint_created",
        target=f"webhook:{endpoint['id']}",
        payload={"url": masked_url(url), "event_types": event_types},
    )  # fmt: skip
    return endpoint, secret


async def get(conn: asyncpg.Connection, tenant_id: uuid.UUID, endpoint_id: uuid.UUID) -> Any:
    endpoint = await repository.get_endpoint(conn, tenant_id, endpoint_id)
    if endpoint is None:
        raise WebhookEndpointNotFound(f"no webhook endpoint {endpoint_id} in this tenant")
    return endpoint


async def update(
    conn: asyncpg.Connection,
    policy: EndpointPolicy,
    *,
    tenant_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    actor: str,
    changes: dict[str, Any],
) -> Any:
    """Change url, description, event_types or enabled; disabling cancels what is pending."""
    if changes.get("url") is not None:
        await check_url(policy, changes["url"])
    endpoint = await repository.update_endpoint(
        conn, tenant_id, endpoint_id, url=changes.get("url"),
        description=changes.get("description"), event_types=changes.get("event_types"),
        enabled=changes.get("enabled"),
    )  # fmt: skip
    if endpoint is None:
        raise WebhookEndpointNotFound(f"no webhook endpoint {endpoint_id} in this tenant")
    if changes.get("enabled") is False:
        await repository.cancel_pending(conn, [endpoint_id])
    await audit.record(
        conn, tenant_id=tenant_id, actor=actor, action="webhook.endpoint_updated",
        target=f"webhook:{endpoint_id}",
        payload={k: masked_url(v) if k == "url" and v else v for k, v in changes.items()},
    )  # fmt: skip
    return endpoint


async def delete(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, endpoint_id: uuid.UUID, actor: str
) -> None:
    if not await repository.delete_endpoint(conn, tenant_id, endpoint_id):
        raise WebhookEndpointNotFound(f"no webhook endpoint {endpoint_id} in this tenant")
    await audit.record(
        conn, tenant_id=tenant_id, actor=actor, action="webhook.endpoint_deleted",
        target=f"webhook:{endpoint_id}",
    )  # fmt: skip


async def rotate(
    conn: asyncpg.Connection,
    ring: KeyRing,
    *,
    tenant_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    actor: str,
    grace_seconds: float,
) -> str:
    """A new signing secret (returned this once); the previous one keeps signing beside it,
    both signatures in ``webhook-signature``, for ``grace_seconds``."""
    endpoint = await repository.get_endpoint(conn, tenant_id, endpoint_id, lock=True)
    if endpoint is None:
        raise WebhookEndpointNotFound(f"no webhook endpoint {endpoint_id} in this tenant")
    secret = await _store_secret(conn, ring, endpoint, grace_seconds=grace_seconds)
    await audit.record(
        conn, tenant_id=tenant_id, actor=actor, action="webhook.secret_rotated",
        target=f"webhook:{endpoint_id}", payload={"grace_seconds": grace_seconds},
    )  # fmt: skip
    return secret


async def replay(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, delivery_id: uuid.UUID
) -> uuid.UUID:
    """Deliver a delivery's event again to its endpoint, with the same ``webhook-id``.
    Refused (:class:`EndpointDisabled`) while the endpoint is disabled: enable it first."""
    row = await repository.get_delivery(conn, tenant_id, delivery_id)
    if row is None or row["endpoint_id"] is None:
        raise DeliveryNotFound(f"no webhook delivery {delivery_id} in this tenant")
    _require_enabled(await get(conn, tenant_id, row["endpoint_id"]))
    return await repository.replay(conn, tenant_id, delivery_id)


def _require_enabled(endpoint: Any) -> None:
    # a disabled endpoint takes no deliveries: one queued now would be sent (a claim does not
    # look at the endpoint) yet could neither end the failure streak nor start one
    if not endpoint["enabled"]:
        raise EndpointDisabled("the webhook endpoint is disabled: enable it, then send again")


async def send_test(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, endpoint_id: uuid.UUID
) -> tuple[uuid.UUID, uuid.UUID]:
    """A ``webhook.test`` event to this endpoint only; (event, delivery). Refused
    (:class:`EndpointDisabled`) while the endpoint is disabled."""
    _require_enabled(await get(conn, tenant_id, endpoint_id))
    event_id = uuid.uuid4()
    delivery = await repository.insert_direct(
        conn, event_id=event_id, tenant_id=tenant_id, endpoint_id=endpoint_id, type=events.TEST,
        data={"endpoint_id": str(endpoint_id), "sent_at": datetime.now(UTC).isoformat()},
    )  # fmt: skip
    return event_id, delivery
