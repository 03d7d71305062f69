"""One OpenAPI document for the public API: the gateway's own routes merged with the services'.

The services' documents are fetched (with an internal token) and cached briefly; a service that
is down leaves its paths out until it is back rather than failing /docs.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from typing import Any

import aiohttp
import structlog
from fastapi import FastAPI

from common.internal_auth import Principal, TokenSigner
from gateway.proxy import Upstream

log = structlog.get_logger(component="seedos.gateway.openapi")
_DOCS_PRINCIPAL = Principal(tenant_id=uuid.UUID(int=0), subject="system:openapi", role="viewer")
_REF = "#/components/schemas/"


class OpenAPIMerger:
    def __init__(
        self, app: FastAPI, upstreams: list[Upstream], signer: TokenSigner, ttl: float
    ) -> None:
        self.app = app
        self.upstreams = upstreams
        self.signer = signer
        self.ttl = ttl
        self._cached: dict[str, Any] | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def document(self) -> dict[str, Any]:
        async with self._lock:
            if self._cached is None or time.monotonic() >= self._expires:
                docs = await asyncio.gather(*(self._fetch(u) for u in self.upstreams))
                self._cached = merge(
                    self.app.openapi(), list(zip(self.upstreams, docs, strict=True))
                )
                complete = all(d is not None for d in docs)
                self._expires = time.monotonic() + (self.ttl if complete else min(self.ttl, 2.0))
            return self._cached

    async def _fetch(self, upstream: Upstream) -> dict[str, Any] | None:
        token = self.signer.mint(_DOCS_PRINCIPAL, audience=upstream.name)
        try:
            async with upstream.session.get(
                upstream.base_url + "/openapi.json",
                headers={"authorization": f"Bearer {token}"},
                timeout=aiohttp.ClientTimeout(total=3),
            ) as resp:
                if resp.status != 200:
                    log.warning("openapi_fetch_failed", upstream=upstream.name, status=resp.status)
                    return None
                return json.loads(await resp.read())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("openapi_fetch_failed", upstream=upstream.name, error=type(exc).__name__)
            return None


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(_REF):
                name = value[len(_REF) :]
                out[key] = _REF + renames.get(name, name)
            else:
                out[key] = _rename_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rename_refs(v, renames) for v in node]
    return node


def merge(
    own: dict[str, Any], services: list[tuple[Upstream, dict[str, Any] | None]]
) -> dict[str, Any]:
    """Merge service documents into the gateway's; clashing schema names get a service prefix."""
    doc = copy.deepcopy(own)
    paths = doc.setdefault("paths", {})
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for upstream, service_doc in services:
        if not service_doc:
            continue
        theirs = service_doc.get("components", {}).get("schemas", {})
        renames = {
            name: f"{upstream.name}__{name}"
            for name, schema in theirs.items()
            if name in schemas and schemas[name] != schema
        }
        service_doc = _rename_refs(service_doc, renames)
        for name, schema in service_doc.get("components", {}).get("schemas", {}).items():
            schemas.setdefault(name, schema)
        for path, item in service_doc.get("paths", {}).items():
            paths.setdefault(path, item)
    security = doc["components"].setdefault("securitySchemes", {})
    security["apiKey"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer sk_seedos_...`",
    }
    doc["security"] = [{"apiKey": []}]
    doc["paths"] = dict(sorted(paths.items()))
    return doc
