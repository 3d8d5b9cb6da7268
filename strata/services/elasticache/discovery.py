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
proxy hop only carries what is sent to the configuration endpoint itself. That hop is user space
(asyncio protocols on Strata's loop): one client's sequential gets through the configuration
endpoint ran at ~7-14k/s against ~30-40k/s straight to a node (2-core machine, load 3-5), where
AWS's configuration endpoint (a DNS name of one node) costs nothing. Memcached 1.6's own proxy
mode, which could answer `config` inside the engine, is not compiled into Debian's build.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from strata.engines.firewall import control_socket
from strata.services.base import run_blocking
from strata.services.elasticache import exposure
from strata.services.elasticache.core import ElastiCacheCore

if TYPE_CHECKING:
    from strata.services.elasticache.provider import ElastiCacheProvider

log = logging.getLogger("strata.elasticache")

STORAGE = {b"set", b"add", b"replace", b"append", b"prepend", b"cas"}
LEGACY_KEY = b"AmazonElastiCache:cluster"
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
        self._sessions: set[_ClientSide] = set()

    async def start(self) -> None:
        """Listen; raises OSError when the address is taken."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ClientSide(self), self.host, self.port, ssl=self.server_tls, reuse_address=True
        )

    def update(self, config: ClusterConfig, backend: tuple[str, int]) -> None:
        """New node list and version (for the next request) and node to forward new connections to."""
        self.config, self.backend = config, backend

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for session in list(self._sessions):
            session.close()


class _TextStream(ABC):
    """One direction of a memcached text-protocol stream, cut into lines; data blocks pass as is.

    A subclass decides what each line becomes (`_line`) and how long a data block follows it.
    Binary-protocol connections (first byte `binary_magic`) pass through untouched.
    """

    binary_magic = b""

    def __init__(self, markers: deque[bytes | None]) -> None:
        self.markers = markers
        self.buf = bytearray()
        self.data_left = 0  # bytes of a data block still to pass on
        self.binary: bool | None = None

    def feed(self, chunk: bytes) -> bytes:
        if self.binary is None:
            self.binary = chunk[:1] == self.binary_magic
        if self.binary:
            return chunk
        buf = self.buf
        buf += chunk
        out = bytearray()
        while buf:
            if self.data_left:
                take = min(self.data_left, len(buf))
                out += buf[:take]
                del buf[:take]
                self.data_left -= take
                continue
            end = buf.find(b"\n")
            if end < 0:
                if len(buf) > MAX_LINE:  # not memcached's protocol: let the other side say so
                    out += buf
                    buf.clear()
                break
            line = bytes(buf[: end + 1])
            del buf[: end + 1]
            self._line(line, out)
        return bytes(out)

    @abstractmethod
    def _line(self, line: bytes, out: bytearray) -> None:
        """Append what `line` becomes to `out`; set `data_left` when a data block follows."""


class _Requests(_TextStream):
    """Client -> node: discovery requests become `mn` markers, answered by the node in order."""

    binary_magic = b"\x80"

    def __init__(self, endpoint: DiscoveryEndpoint, markers: deque[bytes | None]) -> None:
        super().__init__(markers)
        self.endpoint = endpoint

    def _line(self, line: bytes, out: bytearray) -> None:
        words = line.split()
        reply = _discovery_reply(self.endpoint.config, words)
        if reply is not None:
            self.markers.append(reply)
            out += b"mn\r\n"
            return
        out += line
        if not words:
            return
        verb = words[0].lower()
        if verb in STORAGE and len(words) >= 5 and words[4].isdigit():
            self.data_left = int(words[4]) + 2
        elif verb == b"ms" and len(words) >= 3 and words[2].isdigit():
            self.data_left = int(words[2]) + 2
        elif verb == b"mn":
            self.markers.append(None)


class _Replies(_TextStream):
    """Node -> client: an `MN` that answers a marker becomes the configuration."""

    binary_magic = b"\x81"

    def _line(self, line: bytes, out: bytearray) -> None:
        if line.startswith(b"VALUE "):
            words = line.split()
            self.data_left = int(words[3]) + 2 if len(words) >= 4 and words[3].isdigit() else 0
        elif line.startswith(b"VA "):
            words = line.split()
            self.data_left = int(words[1]) + 2 if len(words) >= 2 and words[1].isdigit() else 0
        elif line.rstrip() == b"MN" and self.markers:
            reply = self.markers.popleft()
            if reply is not None:
                out += reply
                return
        out += line


def _discovery_reply(config: ClusterConfig, words: list[bytes]) -> bytes | None:
    lowered = [w.lower() for w in words]
    if lowered == [b"config", b"get", b"cluster"]:
        return config.config_reply()
    if len(words) == 2 and lowered[0] in (b"get", b"gets") and words[1] == LEGACY_KEY:
        return config.legacy_reply()
    return None


class _ClientSide(asyncio.Protocol):
    """One client connection and its connection to the node (protocol callbacks, no task per hop;
    each side's reading pauses while the other side's send buffer is full)."""

    def __init__(self, endpoint: DiscoveryEndpoint) -> None:
        self.endpoint = endpoint
        markers: deque[bytes | None] = deque()  # per `mn` sent to the node: the reply to put instead
        self.requests, self.replies = _Requests(endpoint, markers), _Replies(markers)
        self.transport: asyncio.Transport | None = None
        self.node: _NodeSide | None = None
        self.pending = bytearray()  # what the client sent before the node connection was up
        self.eof = False
        self.closed = False
        self.connecting: asyncio.Task | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.endpoint._sessions.add(self)
        self.connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        host, port = self.endpoint.backend
        tls = self.endpoint.client_tls
        loop = asyncio.get_running_loop()
        sock = control_socket()  # the client was let in at this endpoint: the node must let us in
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (host, port))
            _, node = await loop.create_connection(
                lambda: _NodeSide(self), sock=sock, ssl=tls, server_hostname=host if tls else None
            )
        except (OSError, ssl.SSLError):
            sock.close()
            self.close()
            return
        if self.closed:
            node.close()

    def data_received(self, data: bytes) -> None:
        if self.node is None or self.node.transport is None:
            self.pending += data
            return
        out = self.requests.feed(data)
        if out:
            self.node.transport.write(out)

    def eof_received(self) -> bool:
        self.eof = True  # keep the connection open for the replies still coming
        if self.node is not None:
            self.node.half_close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.endpoint._sessions.discard(self)
        if self.node is not None:
            self.node.close()

    def pause_writing(self) -> None:
        if self.node is not None and self.node.transport is not None:
            self.node.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.node is not None and self.node.transport is not None:
            self.node.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        if self.node is not None:
            self.node.close()


class _NodeSide(asyncio.Protocol):
    def __init__(self, client: _ClientSide) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Pass on what the client sent meanwhile, in order, before any later data."""
        self.transport = transport  # type: ignore[assignment]
        client = self.client
        client.node = self
        if client.pending:
            self.write(client.requests.feed(bytes(client.pending)))
            client.pending.clear()
        if client.eof:
            self.half_close()

    def write(self, data: bytes) -> None:
        if data and self.transport is not None:
            self.transport.write(data)

    def half_close(self) -> None:
        if self.transport is not None and self.transport.can_write_eof():
            self.transport.write_eof()

    def data_received(self, data: bytes) -> None:
        out = self.client.replies.feed(data)
        if out and self.client.transport is not None:
            self.client.transport.write(out)

    def eof_received(self) -> bool:
        self.client.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()

    def pause_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def node_list(nodes: list[dict], port: int, host: Callable[[str], str] = str) -> list[tuple[str, str, int]]:
    """(host, ip, port) of each node record; a node's host name is its address here: `host` of its
    loopback address (its pool address with an engine address list: exposure.node_host)."""
    return [(host(n["address"]), host(n["address"]), port) for n in nodes]


def _tls_contexts(server) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:  # noqa: ANN001
    """(server side, client side) TLS for a cluster whose nodes speak TLS: the endpoint presents the
    first node's certificate (it names the endpoint address too) and checks the node's with the CA."""
    cert = getattr(server.config, "tls", None) if server is not None else None
    if cert is None:
        return None, None
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(str(cert.cert), str(cert.key))
    return server_side, ssl.create_default_context(cafile=str(cert.ca))


class DiscoveryOperations(ElastiCacheCore):
    """A mixin of ElastiCacheProvider: the configuration endpoint of each memcached cluster."""

    discovery: dict[str, DiscoveryEndpoint]

    async def _open_discovery(self: ElastiCacheProvider, doc: dict, host: str) -> None:
        """Serve (or re-point) the configuration endpoint of memcached cluster `doc` at host:port.
        Raises OSError when the address cannot be bound."""
        exposed = self.settings.exposed_engines
        addresses = [n["address"] for n in doc["nodes"]]
        await run_blocking(
            exposure.expose, self.router, exposed, doc["port"], addresses
        )  # nodes added or gone
        public = functools.partial(exposure.node_host, self.router, exposed)
        config = ClusterConfig(doc.get("config_version", 1), node_list(doc["nodes"], doc["port"], public))
        first = doc["nodes"][0]
        backend = (first["address"], doc["port"])
        endpoint = self.discovery.get(self.store.engine_key(doc["id"]))
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
        self.discovery[self.store.engine_key(doc["id"])] = endpoint

    async def _close_discovery(self: ElastiCacheProvider, cluster_id: str) -> None:
        endpoint = self.discovery.pop(self.store.engine_key(cluster_id), None)
        if endpoint is not None:
            await endpoint.close()
