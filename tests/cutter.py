"""A TCP relay on 127.0.0.1 that a test can cut: every connection through it dropped at
once, and new ones refused for a while, as a network between a crawler and its database
that goes away and comes back. Runs its own event loop in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator


class Cutter:
    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._closed_until = 0.0
        self.cuts = 0
        self.port = 0
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True,
                                        name="cutter")
        self._thread.start()
        assert ready.wait(10), "the relay did not start"

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._relay, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self._loop.run_forever()
        server.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._closed_until:
            writer.transport.abort()  # refused: the network is down
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def cut(self, seconds: float) -> None:
        """Drop every connection now; refuse new ones for `seconds`."""
        def now() -> None:
            self._closed_until = time.monotonic() + seconds
            self.cuts += 1
            for writer in list(self._writers):
                writer.transport.abort()
        self._loop.call_soon_threadsafe(now)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


@contextlib.contextmanager
def cutter(target_port: int) -> Iterator[Cutter]:
    relay = Cutter(target_port)
    try:
        yield relay
    finally:
        relay.close()
