"""TCP proxies between each service and the broker, to cut a connection and restore it.

They run on an event loop of their own, in a thread: the tests drive processes with blocking
calls, and a proxy must keep forwarding meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
Link = tuple[asyncio.StreamWriter, asyncio.StreamWriter]


def _abort(link: Link) -> None:
    for writer in link:
        writer.transport.abort()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, link: Link) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        _abort(link)  # AMQP has no half-closed connections: one side gone, both go


class Proxy:
    """Forwards to `upstream`; `cut` drops every connection and refuses new ones until
    `restore`."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.open = True
        self.port = 0
        self.cuts = 0
        self.dropped = 0
        self._links: set[Link] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> int:
        self.open = False
        self.cuts += 1
        links = list(self._links)
        for link in links:
            _abort(link)
        self.dropped += len(links)
        return len(links)

    def restore(self) -> None:
        self.open = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:  # the broker is down: the client sees the connection fail
            writer.transport.abort()
            return
        link = (writer, up_writer)
        if not self.open:  # cut while we were connecting
            _abort(link)
            return
        self._links.add(link)
        try:
            await asyncio.gather(_pipe(reader, up_writer, link), _pipe(up_reader, writer, link))
        finally:
            self._links.discard(link)


class Proxies:
    """One proxy per service, all on one background event loop."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="amqp-proxies", daemon=True
        )
        self._thread.start()
        self.proxies: dict[str, Proxy] = {}

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def add(self, name: str) -> Proxy:
        proxy = Proxy(self.upstream)
        self._call(proxy.start())
        self.proxies[name] = proxy
        return proxy

    def url(self, name: str) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.proxies[name].port}/"

    def cut(self, name: str) -> int:
        """Drops the service's broker connections; returns how many there were."""
        return self._call(self._run(self.proxies[name].cut))

    def restore(self, name: str) -> None:
        self._call(self._run(self.proxies[name].restore))

    @staticmethod
    async def _run(action: Callable[[], T]) -> T:
        return action()  # on the proxies' loop, never beside it

    def close(self) -> None:
        for proxy in self.proxies.values():
            self._call(proxy.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
