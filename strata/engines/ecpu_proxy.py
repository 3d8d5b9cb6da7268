"""ECPU accounting and throttling in front of a cache engine: a TLS-terminating relay that counts
ElastiCache Processing Units per command and holds commands over a per-second rate.

ElastiCache Serverless bills and limits requests in ECPUs: a simple command (GET, SET) takes one
ECPU per kilobyte it transfers, at least one; with a `CacheUsageLimits.ECPUPerSecond.Maximum`
AWS begins throttling requests once the workload goes over it (the ThrottledCmds metric counts
them). An engine cannot do that itself, so this relay sits on the cache's endpoint: it ends the
client's TLS with the node's own certificate, opens its own TLS connection to the engine (trusting
the same CA), and frames the client's byte stream into commands (RESP arrays and inline commands;
memcached's text and meta commands, whose data blocks it skips) without changing a byte.

What a command costs: the kilobytes it and its share of the answers move, at least one ECPU. A
connection's request bytes are charged when they pass; every command finished also earns an
allowance of the first kilobyte not yet used by its request, which the answers flowing back
consume before they are charged (so a GET of a 3.2 KB value costs about 3.2, a small one 1).
Commands are never rejected: they wait (a token bucket holding one second of the rate, whose debt
later commands wait out in order), so a pipeline above the limit is slowed down to it — clients
see latency, as throttled requests on AWS; `throttled` counts the commands that had to wait.
AUTH, HELLO and every other command pass through unchanged (the engine checks them).

    limiter = EcpuLimiter(rate=1000)   # one per cache: its counters and its bucket
    proxy = EcpuProxy("127.0.0.1", 6379, ("127.0.1.1", 6379), "resp", limiter, tls=cert)
    await proxy.start()
    limiter.rate = 5000                # a new limit, from the next command on (None: count only)
    proxy.upstream = ("127.0.1.2", 6379)  # failover: new connections go to the new primary
    proxy.cut()                        # ... and the relayed ones end (their clients reconnect)
    await proxy.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from strata.engines.firewall import control_socket
from strata.engines.tls import ServerCert
from strata.sim.clock import monotonic

log = logging.getLogger("strata.engines")

KB = 1024
_CHUNK = 64 * 1024
MAX_LINE = 64 * 1024  # a command line (header) longer than this is not a cache command
CONNECT_TIMEOUT = 10.0
STORAGE_COMMANDS = {b"set", b"add", b"replace", b"append", b"prepend", b"cas"}  # memcached, with data


@dataclass
class Counters:
    """Totals since the proxy started (monotonic: callers difference them)."""

    commands: int = 0
    ecpus: float = 0.0
    throttled: int = 0  # commands that waited for the bucket
    bytes_in: int = 0
    bytes_out: int = 0
    connections: int = 0


class TokenBucket:
    """`rate` tokens a second, holding at most one second's worth; a taker pays first (`charge`)
    and then waits out any debt, so concurrent takers queue behind each other in the order they
    paid. Real (monotonic) time: it paces real traffic, which the simulated clock does not move."""

    def __init__(self, rate: int | None, now: Callable[[], float] = monotonic) -> None:
        self._now = now
        self.rate = rate
        self.tokens = float(rate or 0)
        self._at = now()

    def _refill(self) -> None:
        now = self._now()
        if self.rate:
            self.tokens = min(float(self.rate), self.tokens + (now - self._at) * self.rate)
        self._at = now

    def charge(self, cost: float) -> float:
        """Take `cost` tokens now; the seconds the taker must wait before going on (0: none)."""
        self._refill()
        if not self.rate:
            return 0.0
        self.tokens -= cost
        return -self.tokens / self.rate if self.tokens < 0 else 0.0


class EcpuLimiter:
    """One cache's ECPU counters and rate, shared by its listeners (endpoint and reader endpoint)."""

    def __init__(self, rate: int | None = None) -> None:
        self.counters = Counters()
        self.bucket = TokenBucket(rate)

    @property
    def rate(self) -> int | None:
        return self.bucket.rate

    @rate.setter
    def rate(self, value: int | None) -> None:
        if value != self.bucket.rate:
            self.bucket = TokenBucket(value)


class RespFramer:
    """Finds where commands end in a client's RESP stream (arrays of bulk strings, or inline)."""

    def __init__(self) -> None:
        self._line = b""  # an unfinished header line
        self._args = 0  # bulk strings still to come in the current array
        self._skip = 0  # bytes of the current bulk string (with its CRLF) still to come
        self._size = 0  # bytes of the current command so far
        self._open = False

    def feed(self, data: bytes) -> list[int]:
        """The sizes of the commands `data` completes."""
        done: list[int] = []
        i, n = 0, len(data)
        while i < n:
            if self._skip:
                take = min(self._skip, n - i)
                self._skip -= take
                self._size += take
                i += take
                if not self._skip and not self._args:
                    done.append(self._size)
                    self._size, self._open = 0, False
                continue
            end = data.find(b"\n", i)
            if end < 0:
                self._line += data[i:]
                self._size += n - i
                if len(self._line) > MAX_LINE:
                    raise ValueError("protocol line too long")
                return done
            line = self._line + data[i:end]
            self._line = b""
            self._size += end + 1 - i
            i = end + 1
            self._line_done(line.rstrip(b"\r"), done)
        return done

    def _line_done(self, line: bytes, done: list[int]) -> None:
        if not self._open:
            if line.startswith(b"*"):
                self._args = max(0, int(line[1:] or 0))
                self._open = True
                if self._args:
                    return
            done.append(self._size)  # an inline command, an empty array, or a blank line
            self._size, self._open = 0, False
            return
        if line.startswith(b"$"):
            self._args -= 1
            self._skip = max(0, int(line[1:] or 0)) + 2
            return
        raise ValueError("bad RESP request")


class MemcachedFramer:
    """Finds where commands end in a client's memcached text stream: one line each, plus the data
    block of a storage command (`set k 0 0 <bytes>`, `cas ... <bytes> <cas>`) or a meta set
    (`ms k <datalen> ...`). A binary-protocol stream is counted per chunk."""

    def __init__(self) -> None:
        self._line = b""
        self._skip = 0
        self._size = 0
        self._binary = False

    def feed(self, data: bytes) -> list[int]:
        if self._binary or (not self._line and not self._skip and not self._size and data[:1] == b"\x80"):
            self._binary = True
            return [len(data)]
        done: list[int] = []
        i, n = 0, len(data)
        while i < n:
            if self._skip:
                take = min(self._skip, n - i)
                self._skip -= take
                self._size += take
                i += take
                if not self._skip:
                    done.append(self._size)
                    self._size = 0
                continue
            end = data.find(b"\n", i)
            if end < 0:
                self._line += data[i:]
                self._size += n - i
                if len(self._line) > MAX_LINE:
                    raise ValueError("protocol line too long")
                return done
            line = self._line + data[i:end]
            self._line = b""
            self._size += end + 1 - i
            i = end + 1
            self._skip = _data_block(line.rstrip(b"\r").split())
            if not self._skip:
                done.append(self._size)
                self._size = 0
        return done


def _data_block(words: list[bytes]) -> int:
    """The bytes (with CRLF) of the data block following a memcached command line (0: none)."""
    try:
        if words and words[0] in STORAGE_COMMANDS and len(words) >= 5:
            return int(words[4]) + 2
        if words and words[0] == b"ms" and len(words) >= 3:
            return int(words[2]) + 2
    except ValueError:
        pass
    return 0


class EcpuProxy:
    """Listens on `host`:`port` and relays each connection to `upstream`; see the module docstring."""

    def __init__(
        self,
        host: str,
        port: int,
        upstream: tuple[str, int],
        protocol: str,
        limiter: EcpuLimiter,
        *,
        tls: ServerCert | None = None,
    ) -> None:
        if protocol not in ("resp", "memcached"):
            raise ValueError(f"unknown protocol {protocol}")
        self.host, self.port, self.upstream, self.protocol = host, port, upstream, protocol
        self.limiter = limiter
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task] = set()
        self._accept_tls: ssl.SSLContext | None = None
        self._connect_tls: ssl.SSLContext | None = None
        if tls is not None:
            self._accept_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._accept_tls.load_cert_chain(tls.cert, tls.key)
            self._connect_tls = ssl.create_default_context(cafile=str(tls.ca))
            self._connect_tls.check_hostname = False  # nodes are reached by loopback address

    async def start(self) -> int:
        """Listen (port 0: a free one); the port listened on."""
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, ssl=self._accept_tls, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        """Stop listening and end every relayed connection (their clients reconnect)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._links):
            task.cancel()
        if self._links:
            await asyncio.gather(*self._links, return_exceptions=True)

    def cut(self) -> None:
        """End the relayed connections (a failover: their clients reconnect to the new primary)."""
        for task in list(self._links):
            task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._links.add(task)
        self.limiter.counters.connections += 1
        up_writer = None
        try:
            sock = control_socket()  # Strata's own: the cache's security groups filter clients
            sock.setblocking(False)
            await asyncio.wait_for(
                asyncio.get_running_loop().sock_connect(sock, self.upstream), CONNECT_TIMEOUT
            )
            up_reader, up_writer = await asyncio.open_connection(
                sock=sock, ssl=self._connect_tls, server_hostname="" if self._connect_tls else None
            )
            link = _Link(self, RespFramer() if self.protocol == "resp" else MemcachedFramer())
            await asyncio.gather(link.requests(reader, up_writer), link.answers(up_reader, writer))
        except (asyncio.CancelledError, ConnectionError, OSError, TimeoutError, ssl.SSLError, ValueError):
            pass
        except Exception:  # noqa: BLE001 - one connection's failure must not end the proxy
            log.exception("ecpu proxy connection")
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()
            if task is not None:
                self._links.discard(task)


class _Link:
    """One client connection's two directions, sharing its first-kilobyte allowance."""

    def __init__(self, proxy: EcpuProxy, framer: RespFramer | MemcachedFramer) -> None:
        self.proxy = proxy
        self.framer = framer
        self.allowance = 0  # answer bytes already paid for by commands' one-ECPU minimum

    async def requests(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        counters = self.proxy.limiter.counters
        try:
            while data := await src.read(_CHUNK):
                sizes = self.framer.feed(data)
                floor = sum(max(0, KB - s) for s in sizes)
                self.allowance += floor
                cost = (len(data) + floor) / KB
                counters.bytes_in += len(data)
                counters.commands += len(sizes)
                counters.ecpus += cost
                wait = self.proxy.limiter.bucket.charge(cost)
                if wait > 0:
                    counters.throttled += max(1, len(sizes))
                    await asyncio.sleep(wait)
                dst.write(data)
                await dst.drain()
        finally:
            with contextlib.suppress(Exception):
                if dst.can_write_eof():
                    dst.write_eof()

    async def answers(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        counters = self.proxy.limiter.counters
        while data := await src.read(_CHUNK):
            paid = min(self.allowance, len(data))
            self.allowance -= paid
            extra = (len(data) - paid) / KB
            counters.bytes_out += len(data)
            if extra:
                counters.ecpus += extra
                self.proxy.limiter.bucket.charge(extra)  # the debt holds the next commands
            dst.write(data)
            await dst.drain()
        dst.close()
