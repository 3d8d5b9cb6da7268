"""A listener that holds connections while a paused engine starts, then relays them to it.

An Aurora Serverless v2 instance with MinCapacity 0 pauses when idle: its engine process stops,
and its endpoints are pointed here instead (services/rds/serverless.py). The first connection
calls `wake()`, which starts the engine and returns its address; every connection that arrived
meanwhile waits for that one call and is then relayed byte for byte. Once the engine runs, the
endpoints point at it again, so only connections opened while it was paused pass through this
relay (for their whole life); nothing else pays a user-space hop.

    relay = WakeRelay(wake)        # wake: async () -> (host, port) of the running engine
    port = await relay.start()     # listens on 127.0.0.1:<free port>
    relay.stop_listening()         # new connections go to the engine now; relayed ones go on
    await relay.close()            # everything ends (instance deleted, server stopping)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("strata.engines")
_CHUNK = 64 * 1024
WAKE_TIMEOUT = 120.0  # seconds a held connection waits for the engine before it is dropped


class WakeRelay:
    """Listens on 127.0.0.1 (a free port: `port` once started); see the module docstring."""

    def __init__(self, wake: Callable[[], Awaitable[tuple[str, int]]]) -> None:
        self._wake = wake
        self._waking: asyncio.Future[tuple[str, int]] | None = None
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self.port = 0
        # local ports of this relay's own connections to the engine: the engine counts them as
        # clients' connections (they carry one each)
        self.upstream_ports: set[int] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def listening(self) -> bool:
        return self._server is not None

    def busy(self) -> bool:
        """Is it listening, or passing a connection on?"""
        return self._server is not None or bool(self._tasks)

    def stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def close(self) -> None:
        self.stop_listening()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _upstream(self) -> asyncio.Future[tuple[str, int]]:
        """The one wake-up call all held connections wait for (again after a failed one)."""
        if self._waking is None or (self._waking.done() and self._waking.exception() is not None):
            self._waking = asyncio.ensure_future(self._wake())
        return self._waking

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        up_writer = None
        try:
            host, port = await asyncio.wait_for(asyncio.shield(self._upstream()), WAKE_TIMEOUT)
            up_reader, up_writer = await asyncio.open_connection(host, port)
            local = up_writer.get_extra_info("sockname")[1]
            self.upstream_ports.add(local)
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                self.upstream_ports.discard(local)
        except (asyncio.CancelledError, ConnectionError, OSError, TimeoutError):
            pass
        except Exception:  # noqa: BLE001 - one connection's failure must not end the relay
            log.exception("wake relay connection")
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()
            if task is not None:
                self._tasks.discard(task)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then half-close `dst` (the other direction may go on)."""
    try:
        while data := await src.read(_CHUNK):
            dst.write(data)
            await dst.drain()
    finally:
        with contextlib.suppress(Exception):
            if dst.can_write_eof():
                dst.write_eof()
