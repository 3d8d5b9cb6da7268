"""A memcached cluster's configuration endpoint: Auto Discovery plus ordinary memcached traffic.

AWS's memcached nodes answer `config get cluster` (ASCII protocol, engine 1.4.14+) and, for older
clients, `get AmazonElastiCache:cluster` with the cluster's configuration version and node list:

    CONFIG cluster 0 <bytes>\\r\\n
    <version>\\n
    <host>|<ip>|<port> <host>|<ip>|<port> ...\\n
    \\r\\n
    END\\r\\n

where <bytes> counts the version line and the node-list line with their "\\n"; the version grows
each time nodes are added or removed. Memcached 1.6 itself knows no `config` command, so the
configuration endpoint (PRIMARY:<port>) is this small asyncio proxy: it answers those two requests
itself and passes everything else to the cluster's first node, byte for byte.

Order is kept without waiting on the node: each discovery request is sent to the node as a meta
no-op (`mn`, answered `MN`), and when that `MN` comes back in the node's reply stream it is
replaced by the configuration. The proxy follows request framing (storage commands carry a data
block) and reply framing (`VALUE`/`VA` headers carry a data block) so a value that happens to
contain "MN" is never mistaken for the marker. A connection that starts in the binary protocol is
piped through untouched (no discovery there; AWS's binary `config` is not implemented).

Clients that use discovery connect to the listed nodes directly afterwards, as they do on AWS; the
proxy hop only carries what is sent to the configuration endpoint itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strata.services.elasticache.provider import ElastiCacheProvider

log = logging.getLogger("strata.elasticache")

STORAGE = {b"set", b"add", b"replace", b"append", b"prepend", b"cas"}
LEGACY_KEY = b"AmazonElastiCache:cluster"
READ_SIZE = 65536
MAX_LINE = 65536  # memcached's own limit on a command line is far smaller


@dataclass
class ClusterConfig:
    """What discovery reports: the version and the (host, ip, port) of every node."""

    version: int
    nodes: list[tuple[str, str, int]] = field(default_factory=list)

    def body(self) -> bytes:
        listed = " ".join(f"{host}|{ip}|{port}" for host, ip, port in self.nodes)
        return f"{self.version}\n{listed}\n".encode()

    def config_reply(self) -> bytes:
        body = self.body()
        return b"CONFIG cluster 0 %d\r\n%s\r\nEND\r\n" % (len(body), body)

    def legacy_reply(self) -> bytes:
        body = self.body()
        return b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (LEGACY_KEY, len(body), body)


class DiscoveryEndpoint:
    """The asyncio server on (host, port); `update()` changes what it reports and where it forwards."""

    def __init__(
        self,
        host: str,
        port: int,
        config: ClusterConfig,
        backend: tuple[str, int],
        *,
        server_tls: ssl.SSLContext | None = None,
        client_tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.config = config
        self.backend = backend
        self.server_tls, self.client_tls = server_tls, client_tls
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        """Listen; raises OSError when the address is taken."""
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, ssl=self.server_tls, reuse_address=True
        )

    def update(self, config: ClusterConfig, backend: tuple[str, int]) -> None:
        """New node list and version (for the next request) and node to forward new connections to."""
        self.config, self.backend = config, backend

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = self.backend
        try:
            node_reader, node_writer = await asyncio.open_connection(
                host, port, ssl=self.client_tls, server_hostname=host if self.client_tls else None
            )
        except (OSError, ssl.SSLError):
            writer.close()
            return
        markers: deque[bytes | None] = deque()  # per `mn` sent to the node: the reply to put instead
        up = asyncio.ensure_future(self._requests(reader, node_writer, markers))
        down = asyncio.ensure_future(self._replies(node_reader, writer, markers))
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            if up.done() and not down.done():  # client finished sending: let the replies drain
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(down), 5)
        finally:
            for task in (up, down):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for w in (writer, node_writer):
                with contextlib.suppress(Exception):
                    w.close()

    async def _requests(
        self, reader: asyncio.StreamReader, node: asyncio.StreamWriter, markers: deque[bytes | None]
    ) -> None:
        """Client -> node, command by command; discovery requests become `mn` markers."""
        buf = bytearray()
        data_left = 0  # bytes of a storage command's data block still to pass on
        binary: bool | None = None
        while True:
            chunk = await reader.read(READ_SIZE)
            if not chunk:
                with contextlib.suppress(Exception):
                    node.write_eof()
                return
            if binary is None:
                binary = chunk[0] == 0x80
            if binary:
                node.write(chunk)
                await node.drain()
                continue
            buf += chunk
            out = bytearray()
            while buf:
                if data_left:
                    take = min(data_left, len(buf))
                    out += buf[:take]
                    del buf[:take]
                    data_left -= take
                    continue
                end = buf.find(b"\n")
                if end < 0:
                    if len(buf) > MAX_LINE:  # not memcached's protocol: let the node say so
                        out += buf
                        buf.clear()
                    break
                line = bytes(buf[: end + 1])
                del buf[: end + 1]
                words = line.split()
                reply = self._discovery_reply(words)
                if reply is not None:
                    markers.append(reply)
                    out += b"mn\r\n"
                    continue
                out += line
                if not words:
                    continue
                verb = words[0].lower()
                if verb in STORAGE and len(words) >= 5 and words[4].isdigit():
                    data_left = int(words[4]) + 2
                elif verb == b"ms" and len(words) >= 3 and words[2].isdigit():
                    data_left = int(words[2]) + 2
                elif verb == b"mn":
                    markers.append(None)
            if out:
                node.write(out)
                await node.drain()

    def _discovery_reply(self, words: list[bytes]) -> bytes | None:
        lowered = [w.lower() for w in words]
        if lowered == [b"config", b"get", b"cluster"]:
            return self.config.config_reply()
        if len(words) == 2 and lowered[0] in (b"get", b"gets") and words[1] == LEGACY_KEY:
            return self.config.legacy_reply()
        return None

    async def _replies(
        self, node: asyncio.StreamReader, writer: asyncio.StreamWriter, markers: deque[bytes | None]
    ) -> None:
        """Node -> client, reply by reply; an `MN` that answers a marker becomes the configuration."""
        buf = bytearray()
        data_left = 0
        binary: bool | None = None
        while True:
            chunk = await node.read(READ_SIZE)
            if not chunk:
                return
            if binary is None:
                binary = chunk[0] == 0x81
            if binary:
                writer.write(chunk)
                await writer.drain()
                continue
            buf += chunk
            out = bytearray()
            while buf:
                if data_left:
                    take = min(data_left, len(buf))
                    out += buf[:take]
                    del buf[:take]
                    data_left -= take
                    continue
                end = buf.find(b"\n")
                if end < 0:
                    break
                line = bytes(buf[: end + 1])
                del buf[: end + 1]
                if line.startswith(b"VALUE "):
                    words = line.split()
                    data_left = int(words[3]) + 2 if len(words) >= 4 and words[3].isdigit() else 0
                elif line.startswith(b"VA "):
                    words = line.split()
                    data_left = int(words[1]) + 2 if len(words) >= 2 and words[1].isdigit() else 0
                elif line.rstrip() == b"MN" and markers:
                    reply = markers.popleft()
                    if reply is not None:
                        out += reply
                        continue
                out += line
            if out:
                writer.write(out)
                await writer.drain()


def node_list(nodes: list[dict], port: int) -> list[tuple[str, str, int]]:
    """(host, ip, port) of each node record; a node's host name is its loopback address here."""
    return [(n["address"], n["address"], port) for n in nodes]


def _tls_contexts(server) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:  # noqa: ANN001
    """(server side, client side) TLS for a cluster whose nodes speak TLS: the endpoint presents the
    first node's certificate (it names the endpoint address too) and checks the node's with the CA."""
    cert = getattr(server.config, "tls", None) if server is not None else None
    if cert is None:
        return None, None
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(str(cert.cert), str(cert.key))
    return server_side, ssl.create_default_context(cafile=str(cert.ca))


class DiscoveryOps:
    """A mixin of ElastiCacheProvider: the configuration endpoint of each memcached cluster."""

    discovery: dict[str, DiscoveryEndpoint]

    async def _open_discovery(self: ElastiCacheProvider, doc: dict, host: str) -> None:
        """Serve (or re-point) the configuration endpoint of memcached cluster `doc` at host:port.
        Raises OSError when the address cannot be bound."""
        config = ClusterConfig(doc.get("config_version", 1), node_list(doc["nodes"], doc["port"]))
        first = doc["nodes"][0]
        backend = (first["address"], doc["port"])
        endpoint = self.discovery.get(doc["id"])
        if endpoint is not None and endpoint.port == doc["port"]:
            endpoint.update(config, backend)
            return
        if endpoint is not None:
            await self._close_discovery(doc["id"])
        server_tls, client_tls = _tls_contexts(self.engines.get(doc["id"], first["id"]))
        endpoint = DiscoveryEndpoint(
            host, doc["port"], config, backend, server_tls=server_tls, client_tls=client_tls
        )
        await endpoint.start()
        self.discovery[doc["id"]] = endpoint

    async def _close_discovery(self: ElastiCacheProvider, cluster_id: str) -> None:
        endpoint = self.discovery.pop(cluster_id, None)
        if endpoint is not None:
            await endpoint.close()
