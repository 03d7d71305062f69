"""Install and uninstall from the marketplace, through connector_service.

connector_service's create is the one place that checks an install's config, scopes and the
single-instance rule, so the marketplace calls it, with an internal token minted for the caller
(same tenant, subject, role and request id; issuer marketplace_service), and passes its answer
back unchanged: 201 with the install, or the 422 listing every problem, or the 409. Both calls
are audited here too (``marketplace.install``, ``marketplace.uninstall``) with the outcome.
connector_service down is a fast 503, silent a 504: nothing was stored by the marketplace.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import httpx
import orjson

from common import audit
from common.db import Database
from common.errors import GatewayTimeout, ServiceUnavailable
from common.idempotency import Answer
from common.internal_auth import Principal, TokenSigner

CONNECTOR_SERVICE = "connector_service"


class ConnectorServiceUnavailable(ServiceUnavailable):
    code, title = "upstream_unavailable", "connector_service unavailable"


class ConnectorServiceTimeout(GatewayTimeout):
    code, title = "upstream_timeout", "connector_service did not answer in time"


def _derived(key: str) -> str:
    """The key connector_service gets for a marketplace install: the caller's, in a namespace
    of its own (the same key sent to POST /api/v1/integrations directly is another request)."""
    return "marketplace-install:" + hashlib.sha256(key.encode()).hexdigest()


class Installer:
    def __init__(
        self, *, base_url: str, signer: TokenSigner, client: httpx.AsyncClient, db: Database
    ) -> None:
        self._base = base_url.rstrip("/")
        self._signer = signer
        self._client = client
        self._db = db

    async def install(
        self, principal: Principal, body: dict[str, Any], *, idempotency_key: str | None = None
    ) -> Answer:
        """With the caller's Idempotency-Key, connector_service gets one derived from it: an
        install whose answer never arrived (a timeout) is then not made twice by a retry,
        which gets connector_service's stored answer instead."""
        headers = {"Idempotency-Key": _derived(idempotency_key)} if idempotency_key else {}
        answer = await self._call(principal, "POST", "/api/v1/integrations", body, headers)
        target = None
        if answer.status == 201 and isinstance(answer.body, dict):
            target = f"integration:{answer.body.get('id')}"
        await self._audit(principal, "marketplace.install", target,
                          connector=body.get("connector"), status=answer.status)  # fmt: skip
        return answer

    async def uninstall(self, principal: Principal, integration_id: uuid.UUID) -> Answer:
        answer = await self._call(principal, "DELETE", f"/api/v1/integrations/{integration_id}")
        await self._audit(principal, "marketplace.uninstall", f"integration:{integration_id}",
                          status=answer.status)  # fmt: skip
        return answer

    async def _call(
        self, principal: Principal, method: str, path: str, body: Any = None,
        extra_headers: dict[str, str] | None = None,
    ) -> Answer:  # fmt: skip
        token = self._signer.mint(principal, audience=CONNECTOR_SERVICE)
        headers = {"Authorization": f"Bearer {token}", **(extra_headers or {})}
        if principal.request_id:
            headers["X-Request-ID"] = principal.request_id
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await self._client.request(
                method, self._base + path, headers=headers,
                content=orjson.dumps(body) if body is not None else None,
            )  # fmt: skip
        except httpx.ConnectError:
            raise ConnectorServiceUnavailable("connector_service refused the connection") from None
        except httpx.TimeoutException:
            raise ConnectorServiceTimeout("connector_service did not answer in time") from None
        except httpx.TransportError as exc:
            raise ConnectorServiceUnavailable(f"connector_service: {type(exc).__name__}") from None
        try:
            parsed = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            parsed = {"detail": "connector_service answered something that is not JSON"}
        # connector_service still running the first request with this key: say so, but do not
        # keep that answer for every repeat
        running = (
            response.status_code == 409
            and isinstance(parsed, dict)
            and (parsed.get("code") == "idempotency_in_progress")
        )
        return Answer(response.status_code, parsed, final=not running)

    async def _audit(
        self, principal: Principal, action: str, target: str | None, **details: Any
    ) -> None:
        async with self._db.connection() as conn:
            await audit.record(
                conn, tenant_id=principal.tenant_id, actor=principal.subject, action=action,
                target=target, payload=details, request_id=principal.request_id,
            )  # fmt: skip
