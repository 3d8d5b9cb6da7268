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
from collections import deque
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


# what a client's command means for the answers that follow it (RespFramer.kinds)
PLAIN, TOPOLOGY, NO_REPLY, UNPAIRED = 0, 1, 2, 3
_TOPOLOGY = {b"SLOTS", b"SHARDS", b"NODES"}
_UNPAIRED = {b"SUBSCRIBE", b"PSUBSCRIBE", b"SSUBSCRIBE", b"MONITOR"}  # answers without commands


def _kind(words: list[bytes]) -> int:
    w = [x.upper() for x in words]
    if not w:
        return NO_REPLY  # an empty inline line: the engine skips it
    if w[0] == b"CLUSTER" and len(w) > 1 and w[1] in _TOPOLOGY:
        return TOPOLOGY
    if w[0] in _UNPAIRED or (w[0] == b"CLIENT" and len(w) > 1 and w[1] in (b"REPLY", b"TRACKING")):
        return UNPAIRED
    return PLAIN


class RespFramer:
    """Finds where commands end in a client's RESP stream (arrays of bulk strings, or inline), and
    what each is (`kinds`, parallel to `feed`'s sizes: its first two words tell)."""

    def __init__(self) -> None:
        self._line = b""  # an unfinished header line
        self._args = 0  # bulk strings still to come in the current array
        self._total = 0  # bulk strings of the current array
        self._skip = 0  # bytes of the current bulk string (with its CRLF) still to come
        self._size = 0  # bytes of the current command so far
        self._open = False
        self._want = 0  # bytes of the current bulk string still to keep (the first two words)
        self._word = b""
        self._words: list[bytes] = []
        self.kinds: list[int] = []

    def feed(self, data: bytes) -> list[int]:
        """The sizes of the commands `data` completes (their kinds in `kinds`)."""
        done: list[int] = []
        self.kinds = []
        i, n = 0, len(data)
        while i < n:
            if self._skip:
                take = min(self._skip, n - i)
                if self._want:
                    kept = data[i : i + min(take, self._want)]
                    self._word += kept
                    self._want -= len(kept)
                self._skip -= take
                self._size += take
                i += take
                if not self._skip:
                    if self._word:
                        self._words.append(self._word)
                        self._word = b""
                    if not self._args:
                        self._complete(done)
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

    def _complete(self, done: list[int]) -> None:
        done.append(self._size)
        self.kinds.append(_kind(self._words))
        self._size, self._open, self._words = 0, False, []

    def _line_done(self, line: bytes, done: list[int]) -> None:
        if not self._open:
            if line.startswith(b"*"):
                self._args = self._total = max(0, int(line[1:] or 0))
                self._open = True
                if self._args:
                    return
                self._words = [b"*"]  # an empty array: the engine answers it
            else:
                self._words = line.split()[:2]  # an inline command (or a blank line)
            self._complete(done)
            return
        if line.startswith(b"$"):
            length = max(0, int(line[1:] or 0))
            self._want = length if self._total - self._args < 2 and length <= 32 else 0
            self._args -= 1
            self._skip = length + 2
            return
        raise ValueError("bad RESP request")


class ReplyFramer:
    """Finds where the engine's answers end in a RESP2/RESP3 stream; out-of-band pushes (`>`) and
    attributes (`|`) are not answers."""

    def __init__(self) -> None:
        self._line = b""
        self._skip = 0
        self._stack: list[int] = []  # elements still to come in each open aggregate
        self._oob = False  # the top-level value is a push or an attribute

    def feed(self, data: bytes) -> list[int]:
        """Offsets in `data` just after each answer it completes."""
        ends: list[int] = []
        i, n = 0, len(data)
        while i < n:
            if self._skip:
                take = min(self._skip, n - i)
                self._skip -= take
                i += take
                if not self._skip:
                    self._value_done(i, ends)
                continue
            end = data.find(b"\n", i)
            if end < 0:
                self._line += data[i:]
                if len(self._line) > MAX_LINE:
                    raise ValueError("protocol line too long")
                return ends
            line = (self._line + data[i:end]).rstrip(b"\r")
            self._line = b""
            i = end + 1
            kind, rest = line[:1], line[1:]
            if kind in (b"*", b"~", b">", b"%", b"|"):
                count = int(rest or 0) * (2 if kind in (b"%", b"|") else 1)
                if count > 0:
                    if not self._stack:
                        self._oob = kind in (b">", b"|")
                    self._stack.append(count)
                    continue
            elif kind in (b"$", b"!", b"=") and int(rest or 0) >= 0:
                self._skip = int(rest) + 2
                continue
            self._value_done(i, ends)
        return ends

    def _value_done(self, at: int, ends: list[int]) -> None:
        while self._stack:
            self._stack[-1] -= 1
            if self._stack[-1] > 0:
                return
            self._stack.pop()
        if self._oob:
            self._oob = False
        else:
            ends.append(at)


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
        # same-length byte strings replaced in answers to CLUSTER SLOTS/SHARDS/NODES (node
        # addresses -> the endpoint's), so cluster clients come back through this proxy
        self.announce: dict[bytes, bytes] = {}
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
            link = _Link(self)
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
    """One client connection's two directions, sharing its first-kilobyte allowance and (RESP)
    the kinds of the commands whose answers are still to come."""

    def __init__(self, proxy: EcpuProxy) -> None:
        self.proxy = proxy
        resp = proxy.protocol == "resp"
        self.framer: RespFramer | MemcachedFramer = RespFramer() if resp else MemcachedFramer()
        self.allowance = 0  # answer bytes already paid for by commands' one-ECPU minimum
        # answers paired with commands (None: not RESP, or a command made answers come unasked)
        self.replies: ReplyFramer | None = ReplyFramer() if resp and proxy.announce else None
        self.pending: deque[bool] = deque()  # per command awaiting its answer: is it a topology one?
        self.held = b""  # the start of a topology answer

    async def requests(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        counters = self.proxy.limiter.counters
        try:
            while data := await src.read(_CHUNK):
                sizes = self.framer.feed(data)
                if self.replies is not None and isinstance(self.framer, RespFramer):
                    self._expect(self.framer.kinds)
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
        finally:  # the client is done: so is the engine's side (TLS has no half-close)
            with contextlib.suppress(Exception):
                if dst.can_write_eof():
                    dst.write_eof()
                else:
                    dst.close()

    def _expect(self, kinds: list[int]) -> None:
        for kind in kinds:
            if kind == UNPAIRED:  # answers now come unasked: stop pairing (and rewriting)
                self.replies = None
                return
            if kind != NO_REPLY:
                self.pending.append(kind == TOPOLOGY)

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
            if self.replies is not None:
                data = self._pair(self.replies, data)
            elif self.held:
                data, self.held = self.held + data, b""
            if data:
                dst.write(data)
                await dst.drain()
        dst.close()

    def _pair(self, replies: ReplyFramer, data: bytes) -> bytes:
        """`data` with topology answers rewritten; a topology answer's start is held until its end."""
        out = bytearray()
        pos = 0
        for end in replies.feed(data):
            topology = self.pending.popleft() if self.pending else False
            answer, self.held, pos = self.held + data[pos:end], b"", end
            if topology:
                for old, new in self.proxy.announce.items():
                    answer = answer.replace(old, new)
            out += answer
        if self.pending and self.pending[0]:
            self.held += data[pos:]
        else:
            out += self.held + data[pos:]
            self.held = b""
        return bytes(out)
