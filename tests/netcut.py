"""A network a test can cut: a loopback HTTP proxy between one browser and the gateway that the
test stops (every open connection dropped, WebSockets included, and new ones refused) and
starts again on the same port.

Playwright's offline mode cannot stand in for this: it leaves open WebSockets running
(playwright#4910), so the CRDT path would never see the cut. A browser context is pointed at it
with Playwright's ``proxy`` option, so its pages keep the gateway's own origin (its sessions,
CSRF and WebSocket origin checks unchanged) while another context, not proxied, stays online.

It forwards to one upstream only (the gateway): a request for anything else is refused with
403 before any connection is made. Plain requests arrive in absolute form (``GET http://host/
path``), which HTTP/1.1 servers accept, and are passed on as they are; WebSockets come through
``CONNECT``. It runs on a thread of its own, so tests of any style (and benches) can use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from urllib.parse import urlsplit

HEAD_LIMIT = 64 * 1024
CHUNK = 64 * 1024


class NetCut:
    """``NetCut("http://127.0.0.1:8000")``: ``.server`` is the proxy's address for the browser
    (``{"server": cut.server}``); :meth:`cut` drops everything and refuses connections until
    :meth:`restore`. Use as a context manager, or :meth:`close` when done. :meth:`sockets`
    counts the WebSockets opened through it (a browser tunnels them with ``CONNECT``)."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        # bound here, so no other process can take the port before the first start; kept
        # across cuts (bound again on restore)
        self._first: socket.socket | None = socket.socket()
        self._first.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._first.bind(("127.0.0.1", 0))
        self.port = self._first.getsockname()[1]
        self.server = f"http://127.0.0.1:{self.port}"
        self.opened: list[str] = []  # each connection's first request line (the last 1,000)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="netcut")
        self._thread.start()
        self._listener: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.restore()

    def sockets(self) -> int:
        """How many of the connections (the last 1,000) were WebSockets to the upstream."""
        tunnel = "CONNECT {}:{} ".format(*self.upstream)
        return sum(line.startswith(tunnel) for line in self.opened)

    # ----------------------------------------------------------------------- the switch

    @property
    def up(self) -> bool:
        return self._listener is not None

    def cut(self) -> None:
        """The network is gone: the listener closes, every connection through it is reset."""
        self._run(self._cut())

    def restore(self) -> None:
        """The network is back, on the same port."""
        self._run(self._restore())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._run(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> NetCut:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, coroutine) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _restore(self) -> None:
        if self._listener is None and self._first is not None:
            first, self._first = self._first, None
            self._listener = await asyncio.start_server(self._client, sock=first)
        elif self._listener is None:
            self._listener = await asyncio.start_server(
                self._client, "127.0.0.1", self.port, reuse_address=True
            )

    async def _cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        for writer in list(self._open):
            writer.transport.abort()  # a reset, as when a cable is pulled or Wi-Fi drops
        self._open.clear()
        if listener is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.wait_closed(), 2)

    # ----------------------------------------------------------------------- one connection

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > HEAD_LIMIT:
                return
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            self.opened = [*self.opened[-999:], line]
            method, target, _ = line.split(" ", 2)
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
            else:
                parts = urlsplit(target)
                host, port = parts.hostname or "", str(parts.port or 80)
            if (host.strip("[]"), int(port or 0)) != self.upstream:
                writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
                return
            up_reader, upstream = await asyncio.open_connection(*self.upstream)
            self._open.add(upstream)
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            else:
                upstream.write(head)
            await asyncio.gather(self._pipe(reader, upstream), self._pipe(up_reader, writer))
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
            ValueError,
        ):
            pass
        finally:
            for one in (writer, upstream):
                if one is not None:
                    self._open.discard(one)
                    one.transport.abort()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(CHUNK):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                sink.write_eof()
