"""A replication link held `delay` seconds behind: a TCP relay a Redis replica follows instead of its
primary (REPLICAOF <relay>), for FIS replica lag on ElastiCache.

What the primary sends reaches the replica `delay` seconds after the relay received it, in order,
so the replica applies each write that long after the primary made it; what the replica sends
(its handshake, REPLCONF ACK) goes through at once. The handshake's replies (PONG, OK, up to
PSYNC's +CONTINUE or +FULLRESYNC line) also go at once: held back, each round trip would cost the
delay again before the stream even began. With TLS (tls-replication) the relay ends the replica's
TLS with the replica's own certificate and opens its own to the primary, trusting the same CA,
so it can read the handshake.

Every link dies with the relay (close) and with Strata: a replica pointed back at its primary
resumes with a partial resync.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque

from strata.engines.firewall import control_socket
from strata.engines.tls import ServerCert

_STREAM_STARTS = (b"+CONTINUE", b"+FULLRESYNC")
_CHUNK = 64 * 1024
CONNECT_TIMEOUT = 10.0  # seconds to reach the primary before the replica's connection is dropped


class LagRelay:
    """Listen on `host` (a free port: `port` once started) and relay each connection to `upstream`."""

    def __init__(
        self, host: str, upstream: tuple[str, int], delay: float, tls: ServerCert | None = None
    ) -> None:
        self.host = host
        self.upstream = upstream
        self.delay = delay
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task] = set()
        self._accept_tls: ssl.SSLContext | None = None
        self._connect_tls: ssl.SSLContext | None = None
        self._hostname = upstream[0] if tls is not None else None
        if tls is not None:
            self._accept_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._accept_tls.load_cert_chain(tls.cert, tls.key)
            self._connect_tls = ssl.create_default_context(cafile=str(tls.ca))
            self._connect_tls.check_hostname = False  # nodes are reached by loopback address

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, self.host, 0, ssl=self._accept_tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._links):
            task.cancel()
        await asyncio.gather(*self._links, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        try:
            with contextlib.suppress(asyncio.CancelledError):  # close(): the link ends quietly
                await self._link(reader, writer)
        finally:
            self._links.discard(task)

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(self._dial(), CONNECT_TIMEOUT)
        except (OSError, TimeoutError):
            writer.close()
            return
        ends = [
            asyncio.create_task(_pass(reader, up_writer)),
            asyncio.create_task(self._held(up_reader, writer)),
        ]
        try:
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for end in ends:
                end.cancel()
            await asyncio.gather(*ends, return_exceptions=True)
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

    async def _dial(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to the primary as the replica would (from its address), on a socket of Strata's
        own that security groups do not filter (strata.engines.firewall)."""
        sock = control_socket()
        try:
            sock.setblocking(False)
            sock.bind((self.host, 0))
            await asyncio.get_running_loop().sock_connect(sock, self.upstream)
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock, ssl=self._connect_tls, server_hostname=self._hostname)

    async def _held(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Upstream to the replica: the handshake at once, then every byte `delay` seconds late."""
        loop = asyncio.get_running_loop()
        queue: deque[tuple[float, bytes]] = deque()
        arrived = asyncio.Event()

        async def deliver() -> None:
            while True:
                while not queue:
                    arrived.clear()
                    await arrived.wait()
                due, data = queue.popleft()
                await asyncio.sleep(max(0.0, due - loop.time()))
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(deliver())
        handshake: bytes | None = b""  # None once the stream has begun
        sent = 0  # how much of the handshake went through already
        try:
            while data := await reader.read(_CHUNK):
                if handshake is not None:
                    handshake += data
                    now, later = _split_handshake(handshake)
                    writer.write(now[sent:])
                    await writer.drain()
                    sent = len(now)
                    if later is None:
                        continue
                    data, handshake = later, None
                if data:
                    queue.append((loop.time() + self.delay, data))
                    arrived.set()
                if sender.done():
                    sender.result()  # the replica went away: end the link
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)


def _split_handshake(seen: bytes) -> tuple[bytes, bytes | None]:
    """(what goes at once, what is held back) of the bytes seen so far; None while the stream has
    not begun (everything goes at once)."""
    for marker in _STREAM_STARTS:
        at = seen.find(marker)
        if at >= 0:
            end = seen.find(b"\r\n", at)
            if end < 0:
                return seen, None
            return seen[: end + 2], seen[end + 2 :]
    return seen, None


async def _pass(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(_CHUNK):
        writer.write(data)
        await writer.drain()
