"""A probe upstream for the limit tests, standing where both services would: it answers at once,
holds a streamed answer open, answers late, breaks off mid-stream, and echoes WebSocket
messages. It does not check internal tokens: the tests look at what the gateway decides."""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


def create_app() -> Starlette:
    async def hold(request: Request) -> Response:
        """A first chunk at once, the last after ``seconds`` (a long-poll or a slow stream)."""
        seconds = float(request.query_params.get("seconds", "30"))

        async def chunks():
            yield b"start\n"
            await asyncio.sleep(seconds)
            yield b"end\n"

        return StreamingResponse(chunks(), media_type="text/plain")

    async def late(request: Request) -> Response:
        await asyncio.sleep(float(request.query_params.get("seconds", "1")))
        return JSONResponse({"late": True})

    async def broken(_request: Request) -> Response:
        async def chunks():
            yield b"start\n"
            await asyncio.sleep(0.05)
            raise RuntimeError("the upstream breaks off")

        return StreamingResponse(chunks(), media_type="text/plain")

    async def anything(request: Request) -> Response:
        return JSONResponse({"path": request.url.path})

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnect:
            pass

    routes: list = [Route("/readyz", anything)]
    for prefix in ("/api/v1/integrations", "/api/v1/marketplace"):
        routes += [
            Route(prefix + "/hold", hold),
            Route(prefix + "/late", late),
            Route(prefix + "/broken", broken),
            WebSocketRoute(prefix + "/ws", echo),
            Route(prefix + "/{path:path}", anything, methods=["GET", "POST"]),
        ]
    return Starlette(routes=routes)
