"""A probe upstream for the proxy tests: it stands where a service would and reports exactly
what the gateway forwarded (headers, body, the verified internal token), and streams slowly.
It checks internal tokens with the suite's real verifier."""

from __future__ import annotations

import asyncio
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from common.errors import Unauthorized
from common.internal_auth import TokenVerifier
from common.service_keys import PUBLIC_KEYS_SETTING, PublicKeys

PREFIX = "/api/v1/marketplace"


def create_app() -> Starlette:
    verifier = TokenVerifier(
        public_keys=PublicKeys.parse(os.environ[PUBLIC_KEYS_SETTING]),
        audience="marketplace_service",
    )

    async def echo(request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        try:
            principal = verifier.verify(token)
        except Unauthorized:
            return JSONResponse({"error": "bad token"}, status_code=401)
        body = await request.body()
        return JSONResponse(
            {
                "method": request.method,
                "raw_path": request.scope["raw_path"].decode(),
                "query": request.url.query,
                "headers": {k: ", ".join(request.headers.getlist(k)) for k in request.headers},
                "body_length": len(body),
                "principal": {
                    "tenant_id": str(principal.tenant_id),
                    "role": principal.role,
                    "subject": principal.subject,
                    "request_id": request.headers.get("x-request-id"),  # travels beside it
                },
            },
            headers={"Keep-Alive": "timeout=5", "X-Upstream": "yes"},
        )

    async def stream(_request: Request) -> Response:
        async def chunks():
            for i in range(3):
                yield f"chunk-{i}\n".encode()
                await asyncio.sleep(0.4)

        return StreamingResponse(chunks(), media_type="text/plain")

    async def ready(_request: Request) -> Response:
        return JSONResponse({"status": "ready"})

    return Starlette(
        routes=[
            Route("/readyz", ready),
            Route(PREFIX + "/stream", stream),
            Route(PREFIX + "/{path:path}", echo, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]
    )
