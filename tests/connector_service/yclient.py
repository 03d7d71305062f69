"""A pycrdt client of the sync WebSocket, speaking y-websocket's protocol over aiohttp."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from pycrdt import (
    Doc,
    Map,
    YMessageType,
    YSyncMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)


class YClient:
    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.session, self.ws = session, ws
        self.doc = Doc()
        self.records = self.doc.get("records", type=Map)
        self.synced = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self.received = 0  # messages received, of any kind
        self.awareness: list[bytes] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(
        cls, url: str, *, headers: dict[str, str] | None = None, sync: bool = True
    ) -> YClient:
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(url, headers=headers or {}, max_msg_size=0)
        except BaseException:
            await session.close()
            raise
        client = cls(session, ws)
        if sync:
            await ws.send_bytes(create_sync_message(client.doc))
            await asyncio.wait_for(client.synced.wait(), 15)
        return client

    async def _read(self) -> None:
        try:
            while True:
                message = await self.ws.receive()
                if message.type == aiohttp.WSMsgType.CLOSE:
                    self.close_reason = message.extra or ""
                if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                    aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):  # fmt: skip
                    break
                if message.type != aiohttp.WSMsgType.BINARY:
                    continue
                self.received += 1
                data = message.data
                if data[0] == YMessageType.SYNC:
                    reply = handle_sync_message(data[1:], self.doc)
                    if reply is not None:
                        await self.ws.send_bytes(reply)
                    if data[1] == YSyncMessageType.SYNC_STEP2:
                        self.synced.set()
                elif data[0] == YMessageType.AWARENESS:
                    self.awareness.append(data)
                self._changed.set()
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()
            self._changed.set()

    async def edit(self, change: Callable[[Map], Any]) -> bytes:
        """Change the records in one transaction and send the update; returns it."""
        before = self.doc.get_state()
        with self.doc.transaction():
            change(self.records)
        update = self.doc.get_update(before)
        await self.ws.send_bytes(create_update_message(update))
        return update

    async def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            await self.ws.send_str(data)
        else:
            await self.ws.send_bytes(data)

    def record(self, key: str) -> dict[str, Any] | None:
        value = self.records.get(key)
        return value.to_py() if isinstance(value, Map) else None

    def snapshot(self) -> dict[str, Any]:
        return {k: v.to_py() for k, v in self.records.items() if isinstance(v, Map)}

    async def until(self, predicate: Callable[[], bool], within: float = 15) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            left = deadline - time.monotonic()
            assert left > 0, f"not reached in {within} s; closed={self.close_code}"
            self._changed.clear()
            if predicate():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def wait_closed(self, within: float = 10) -> int | None:
        await asyncio.wait_for(self.closed.wait(), within)
        return self.close_code

    async def close(self) -> None:
        try:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                await self.ws.close()
        finally:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            await self.session.close()
