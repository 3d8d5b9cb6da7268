"""HTTP/1.1 serving on the event loop itself: httptools (llhttp) parses, uvloop's transport carries.

Why not granian any more: with the serving thread pinned to one CPU (strata.affinity), a small JSON
request cost ~53 µs of CPU under granian (its Rust threads hand every request to the Python loop
and back), ~29 µs under uvicorn and ~11 µs as a protocol on the loop (wrk, 16 connections, same
run). For GetItem or a 4 KiB PUT that difference was a third of the whole request. Files still go
out zero-copy, with os.sendfile straight from the object's file.

Small responses finished in one turn of the loop wait in the server's outbox and go out back to
back at its end: each send to a sleeping client costs a wake-up (on a VM, an inter-processor
interrupt paid by the sender), and a client woken by the first finds the rest already there.
Measured on GetItem: ~105 -> ~73 µs of server CPU per request, ~9.3k -> ~13.5k requests/s.

One request at a time per connection, in order: pipelined requests wait for the one before them.
A request's body arrives through `RequestBody` while its handler runs, with back-pressure (reading
pauses while too much is buffered) and `Expect: 100-continue` answered when the handler first asks
for the body, so a request refused before that never makes the client send it. A request that
cannot be parsed is answered 400 after the complete requests before it, and the connection closes.

No client holds a connection forever (`HttpLimits`): a request head must arrive whole within a
bound (408), a body must keep arriving (S3's RequestTimeout), an idle keep-alive connection and
one whose answers are not read are closed, and each client address has a connection cap (503
beyond it). One sweep a second checks every connection against these; the hot path only stamps
a time it reads from an attribute.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from ssl import SSLContext

import httptools

from strata.gateway.http_limits import TOO_MANY_CONNECTIONS, HttpLimits, raise_open_file_limit
from strata.gateway.produced import BODY_POOL, ON_LOOP, THREAD_WAIT_MS, SocketPump, after
from strata.gateway.request_body import BODY_HIGH, RequestBody
from strata.gateway.response_head import CONTINUE, date_line, response_head, status_line
from strata.protocol.http import FileBody, Headers, HttpRequest, HttpResponse, ProducedBody

log = logging.getLogger("strata.http")

# Request line plus headers: S3's presigned URLs and metadata fit in a few KiB; AWS refuses 8 KiB+.
MAX_HEAD = 64 * 1024
# An unread body left after the response is read and dropped when this small, else the connection
# closes (the client may be mid-way through gigabytes nobody wants).
_DRAIN_LIMIT = 1024 * 1024
# Closing with a client's bytes unread makes the kernel reset the connection, and the reset throws
# away the answer before the client (still sending its body) reads it. So a connection closed with
# a body still arriving is half-closed instead, and what arrives is read and dropped until the
# client closes, falls silent this long, or this much time has passed (nginx's lingering_timeout
# and lingering_time).
_LINGER_IDLE = 5.0
_LINGER_MAX = 30.0
_SENDFILE_MAX = 1 << 30
# Responses up to this size wait in the server's outbox for the end of the loop's turn.
_SMALL_RESPONSE = 64 * 1024


Handler = Callable[[HttpRequest, "RequestBody"], Awaitable[HttpResponse]]


class _Exchange:
    __slots__ = ("request", "body", "keep_alive", "head")

    def __init__(self, request: HttpRequest, body: RequestBody, keep_alive: bool) -> None:
        self.request = request
        self.body = body
        self.keep_alive = keep_alive
        self.head = request.method == "HEAD"


class DropConnection(Exception):
    """Raised by a handler for a request that must go unanswered, as if its packets were dropped
    (FIS network disruption): the connection is cut with no response."""


class _HeadTooLarge(Exception):
    pass


class HttpConnection(asyncio.Protocol):
    """One client connection: parses requests, runs their handlers in order, writes responses."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer = ""
        self.closed = False
        # The sweep's coarse clock when a byte last arrived or an answer was last finished.
        self.last_activity = server.now
        self._head_since: float | None = None  # a request head began arriving (and is not whole)
        self._write_blocked_since: float | None = None  # answers stopped going out
        self._write_blocked_size = 0  # what the transport held then (less since: progress)
        self._counted = False  # holds one of its address's connection slots
        self._refusal: tuple[int, bytes] | None = None  # answer owed after those in flight
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0
        self._receiving: _Exchange | None = None  # the request whose bytes are arriving
        self._active: _Exchange | None = None  # the request whose handler is running
        self._pipeline: collections.deque[_Exchange] = collections.deque()
        self._reading_paused = False
        self._write_waiter: asyncio.Future[None] | None = None
        self._writing_paused = False
        self._draining: _Exchange | None = None  # answered, its unread body still arriving
        self._lingering_since: float | None = None  # half-closed, dropping what still arrives
        self._upgrade_seen = False
        self._task: asyncio.Task[None] | None = None

    # -- transport callbacks --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else ""
        server = self.server
        held = server.per_ip.get(self.peer, 0)
        if held >= server.limits.max_connections_per_ip:
            self._upgrade_seen = True  # read nothing from it
            transport.write(TOO_MANY_CONNECTIONS)  # type: ignore[attr-defined]
            transport.close()
            return
        server.per_ip[self.peer] = held + 1
        self._counted = True
        server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        server = self.server
        server.connections.discard(self)
        if self._counted:
            self._counted = False
            held = server.per_ip[self.peer] - 1
            if held:
                server.per_ip[self.peer] = held
            else:
                del server.per_ip[self.peer]
        for ex in (self._receiving, self._active, *self._pipeline):
            if ex is not None and not ex.body.complete:
                ex.body._fail()
        self._pipeline.clear()
        waiter = self._write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("client went away"))

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.server.now
        if self._upgrade_seen:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # An Upgrade (h2c, websocket) or CONNECT request: answered as plain HTTP/1.1, then closed.
            self._upgrade_seen = True
            self._close_after_last()
        except httptools.HttpParserCallbackError as e:
            if isinstance(e.__context__, _HeadTooLarge):
                self._refuse(431, b"Request header fields too large")
            else:
                log.exception("request parsing failed")
                self._refuse(400, b"Bad request")
        except httptools.HttpParserError:
            self._refuse(400, b"Bad request")

    def eof_received(self) -> bool:
        # The client finished sending; answer what is in flight, then close. A request cut off
        # mid-body can never complete: its handler learns that now, and it is not answered.
        if self._lingering_since is not None:
            return False  # all answered: the transport closes
        receiving, self._receiving = self._receiving, None
        if receiving is not None:
            receiving.body._fail()
            if receiving is self._active or receiving is self._draining:
                self.server.flush()
                return False
            self._pipeline.remove(receiving)
        if self._close_after_last():
            return True
        self.server.flush()  # answers still in the outbox go out before the transport closes
        return False

    def _close_after_last(self) -> bool:
        """Answer every request already read, and close after the last; False if there is none."""
        last = self._receiving or (self._pipeline[-1] if self._pipeline else self._active)
        if last is None:
            return False
        last.keep_alive = False
        return True

    def pause_writing(self) -> None:
        # The client is not reading its answers: take no more requests from it until it does, or
        # a pipelining client that never reads would have its answers pile up in our memory.
        self._writing_paused = True
        self._write_blocked_since = self.server.now
        self._pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._write_blocked_since = None
        waiter = self._write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if len(self._pipeline) <= 16:
            self._resume_reading()

    # -- parser callbacks -----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_size = 0
        self._head_since = self.server.now

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if self._head_size > MAX_HEAD:
            raise _HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._head_size += len(name) + len(value) + 4
        if self._head_size > MAX_HEAD:
            raise _HeadTooLarge

    def on_headers_complete(self) -> None:
        self._head_since = None
        parser = self.parser
        headers = Headers.from_raw(self._headers)
        url = self._url.decode("latin-1")
        path, _, query = url.partition("?")
        if path.startswith(("http://", "https://")):  # absolute form: keep the path only
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
        request = HttpRequest(
            method=parser.get_method().decode("ascii"),
            raw_path=path or "/",
            query_string=query,
            headers=headers,
            host=headers.get("host") or "",
            client=self.peer,
        )
        length = headers.get("content-length")
        expect = headers.get("expect")
        body = RequestBody(
            self,
            expect is not None and expect.lower() == "100-continue",
            int(length) if length is not None and length.isdigit() else None,
        )
        exchange = _Exchange(request, body, parser.should_keep_alive())
        self._receiving = exchange
        if self._active is None and self._draining is None:
            self._start(exchange)
        else:
            self._pipeline.append(exchange)
            if len(self._pipeline) > 16:
                self._pause_reading()

    def on_body(self, chunk: bytes) -> None:
        exchange = self._receiving
        if exchange is None:
            return
        if exchange is self._draining:
            return
        exchange.body._feed(chunk)
        if exchange.body._buffered > BODY_HIGH:
            self._pause_reading()

    def on_message_complete(self) -> None:
        exchange = self._receiving
        self._receiving = None
        if exchange is None:
            return
        exchange.body._finish()
        if exchange is self._draining:
            self._draining = None
            self._next()

    # -- flow control ---------------------------------------------------------------------------
    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self, for_body: bool = False) -> None:
        # A handler waiting for its body is let through even while the client is slow to read:
        # it may be sending that body before it reads anything.
        if self._writing_paused and not for_body:
            return
        if self._reading_paused and not self.closed and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()

    def want_body(self, body: RequestBody) -> None:
        """The handler waits for body bytes: make sure the client is sending and we are reading."""
        if body.expect_continue:
            body.expect_continue = False
            if not self.closed and self.transport is not None:
                self.server.flush()
                self.transport.write(CONTINUE)
        self._resume_reading(for_body=True)

    def body_drained(self) -> None:
        if len(self._pipeline) <= 16:
            self._resume_reading()

    async def _writable(self) -> None:
        if self.closed:
            raise ConnectionResetError("client went away")
        self._write_waiter = self.loop.create_future()
        try:
            await self._write_waiter
        finally:
            self._write_waiter = None

    # -- running requests -----------------------------------------------------------------------
    def _start(self, exchange: _Exchange) -> None:
        self._active = exchange
        self._task = self.loop.create_task(self._run(exchange))  # held: the loop keeps weak refs

    def _next(self) -> None:
        if self._pipeline:
            self._start(self._pipeline.popleft())
            if len(self._pipeline) <= 16:
                self._resume_reading()
        elif self._refusal is not None:
            self._send_refusal()

    async def _run(self, exchange: _Exchange) -> None:
        try:
            response = await self.server.handler(exchange.request, exchange.body)
        except DropConnection:
            self._active = None
            if self.transport is not None:
                self.transport.abort()
            return
        except Exception:  # noqa: BLE001 - the handler renders errors itself; this is the last resort
            log.exception("unhandled error")
            response = HttpResponse(500, [("content-type", "text/plain")], b"Internal error")
        body = exchange.body
        keep_alive = exchange.keep_alive and not self.server.closing and not body.failed
        if not body.complete:
            # Answered before the body was read: a client still waiting for 100 Continue will not
            # send it; one already sending it may be sending a lot.
            remaining = None if body.length is None else body.length - body._buffered
            if body.expect_continue or remaining is None or remaining > _DRAIN_LIMIT:
                keep_alive = False
        if body.expect_continue and keep_alive and not self.closed:
            # Asked for 100 Continue and never needed it (an empty body, or one sent without
            # waiting): send it anyway. The botocore in AWS CLI v1/v2 otherwise keeps this final
            # answer's status line and reads the *next* answer on the connection with it, losing
            # its framing: `aws s3 sync` waited a minute for each such answer.
            body.expect_continue = False
            self.server.write_soon(self.transport, CONTINUE)  # type: ignore[arg-type]
        try:
            await self._send(response, exchange.head, keep_alive)
        except (ConnectionError, OSError):
            keep_alive = False
        except Exception:  # noqa: BLE001 - the head is out; all we can do is cut the connection
            log.exception("sending the response failed")
            keep_alive = False
        self._active = None
        self.last_activity = self.server.now
        if self.closed:
            return
        if not keep_alive or not exchange.keep_alive or body.failed:  # (either may change while sending)
            self.close(linger=not body.complete and not body.failed)
            return
        if not body.complete:
            body.discard()
            self._draining = exchange
            self._resume_reading()
            return
        self._next()

    def close(self, linger: bool = False) -> None:
        """Close after what is written; `linger` when the client may still be sending a body."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.server.flush()  # a last response may still be waiting in the outbox
        if linger:
            self._linger()
        else:
            transport.close()

    def _linger(self) -> None:
        """Half-close (the answer, then our FIN) and read and drop whatever still arrives, so the
        client can finish sending and then read the answer (see _LINGER_IDLE)."""
        transport = self.transport
        assert transport is not None
        self._upgrade_seen = True  # nothing more is parsed
        self._receiving = None
        self._lingering_since = self.last_activity = self.server.now
        if transport.can_write_eof():  # not under TLS: there the client's close ends it
            transport.write_eof()
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()

    def _refuse(self, status: int, text: bytes) -> None:
        """A request we cannot take (unparsable, too large, too slow): read nothing more, answer
        the complete requests before it, then answer it plainly and hang up."""
        self._pause_reading()
        self._upgrade_seen = True  # ignore anything more
        self._head_since = None
        exchange, self._receiving = self._receiving, None
        if exchange is not None:  # its head was whole; its body went wrong or stopped
            exchange.body._fail()
            if exchange is self._active:  # its handler answers it (the body read fails)
                exchange.keep_alive = False
                return
            if exchange is self._draining:  # answered already
                self._draining = None
                self.close(linger=True)
                return
            self._pipeline.remove(exchange)
        self._refusal = (status, text)
        if self._active is None:
            self._send_refusal()
        # else: _next sends it once the pipeline before it is answered

    def _send_refusal(self) -> None:
        status, text = self._refusal  # type: ignore[misc]
        self._refusal = None
        if self.transport is None or self.transport.is_closing():
            return
        self.server.flush()
        self.transport.write(
            status_line(status)
            + b"content-type: text/plain\r\nconnection: close\r\n"
            + f"content-length: {len(text)}\r\n".encode()
            + date_line()
            + b"\r\n"
            + text
        )
        self._linger()  # the client may be sending more: it reads this answer once it is done

    def check_deadlines(self, now: float, limits: HttpLimits) -> None:
        """Called by the server's sweep: end what has waited on the client too long."""
        if self.transport is None or self.transport.is_closing():
            return
        if self._lingering_since is not None:
            if now - self.last_activity > _LINGER_IDLE or now - self._lingering_since > _LINGER_MAX:
                self.transport.close()
            return
        if self._write_blocked_since is not None:
            buffered = self.transport.get_write_buffer_size()
            if buffered < self._write_blocked_size:  # slow, but reading: a new start
                self._write_blocked_since = now
            self._write_blocked_size = buffered
            if now - self._write_blocked_since > limits.send_timeout:
                log.info("closing %s: answers unread for %.0f s", self.peer, limits.send_timeout)
                self.transport.abort()
            return
        receiving = self._receiving
        if receiving is not None:
            waiting_for_us = self._reading_paused or receiving.body.expect_continue
            if not waiting_for_us and now - self.last_activity > limits.body_timeout:
                log.info("closing %s: request body stalled", self.peer)
                receiving.body._time_out()
                self._refuse(408, b"Request body timeout")
            return
        if self._head_since is not None:
            if now - self._head_since > limits.header_timeout:
                log.info("closing %s: request head not finished in time", self.peer)
                self._refuse(408, b"Request header timeout")
            return
        if self._active is None and not self._pipeline and now - self.last_activity > limits.idle_timeout:
            self.close()

    # -- writing responses ----------------------------------------------------------------------
    async def _send(self, response: HttpResponse, head_only: bool, keep_alive: bool) -> None:
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            return
        body = response.body
        length: int | None = None
        fd = -1
        if type(body) is bytes or isinstance(body, bytearray | memoryview):
            length = len(body)
        elif isinstance(body, ProducedBody):
            length = body.length
        elif isinstance(body, FileBody):
            try:
                fd = os.open(body.path, os.O_RDONLY)
            except OSError:
                log.exception("object file missing: %s", body.path)
                raise
            size = os.fstat(fd).st_size
            length = max(0, min(size - body.offset, body.length if body.length is not None else size))
        head, chunked = response_head(response, length, head_only, keep_alive)
        if fd >= 0 or length is None or length > _SMALL_RESPONSE or isinstance(body, ProducedBody):
            self.server.flush()  # written directly below: what is queued for this connection first
        if isinstance(body, ProducedBody):
            if head_only or not length:
                body.close()
                transport.write(head)
            else:
                await self._send_produced(head, body)
            return
        if fd >= 0:
            try:
                transport.write(head)
                if not head_only and length:
                    await self._sendfile(fd, body.offset, length)  # type: ignore[union-attr]
            finally:
                os.close(fd)
            return
        if length is not None:
            if head_only or not length:
                self.server.write_soon(transport, head)
            elif length <= _SMALL_RESPONSE:
                self.server.write_soon(transport, head + bytes(body))  # type: ignore[arg-type]
            else:
                transport.writelines((head, body))  # type: ignore[arg-type]
            return
        transport.write(head)
        if head_only:
            return
        async for chunk in body:  # type: ignore[union-attr]
            if not chunk:
                continue
            if self.closed:
                raise ConnectionResetError("client went away")
            if chunked:
                transport.writelines((f"{len(chunk):x}\r\n".encode(), chunk, b"\r\n"))
            else:
                transport.write(chunk)
            if self._writing_paused:
                await self._writable()
        if chunked:
            transport.write(b"0\r\n\r\n")

    async def _sendfile(self, fd: int, offset: int, length: int) -> None:
        """Zero-copy from the file to the socket, once what the transport buffered has gone out."""
        transport = self.transport
        assert transport is not None
        sock = transport.get_extra_info("socket").fileno()
        watch = -1  # a duplicate of the socket to wait on (see _fd_writable), made when needed
        try:
            while transport.get_write_buffer_size():
                watch = os.dup(sock) if watch < 0 else watch
                await self._fd_writable(watch)
                await asyncio.sleep(0)  # the transport flushes its buffer in its own callback
            while length > 0:
                if self.closed:
                    raise ConnectionResetError("client went away")
                try:
                    sent = os.sendfile(sock, fd, offset, min(length, _SENDFILE_MAX))
                except BlockingIOError:
                    watch = os.dup(sock) if watch < 0 else watch
                    await self._fd_writable(watch)
                    continue
                if sent == 0:
                    raise ConnectionResetError("object file shorter than its length")
                offset += sent
                length -= sent
        finally:
            if watch >= 0:
                os.close(watch)

    async def _send_produced(self, head: bytes, body: ProducedBody) -> None:
        """The head and `body` straight to the socket (see strata.gateway.produced); closes the body."""
        transport = self.transport
        assert transport is not None
        # The pump's own handle on the socket: the transport may close its descriptor (a client
        # cut off by the sweep) while a thread is writing.
        fd = os.dup(transport.get_extra_info("socket").fileno())
        pump = SocketPump(fd, head, body)
        running: Future | None = None

        def release() -> None:
            os.close(fd)
            body.close()

        try:
            while transport.get_write_buffer_size():  # what the transport holds goes first
                await self._fd_writable(fd)
                await asyncio.sleep(0)  # the transport flushes its buffer in its own callback
            if body.length <= ON_LOOP and pump.run(0):
                return
            while True:
                if self.closed:
                    raise ConnectionResetError("client went away")
                running = BODY_POOL.submit(pump.run, THREAD_WAIT_MS)
                if await asyncio.wrap_future(running):
                    return
                await self._fd_writable(fd)
        finally:
            pump.stopped = True
            if running is None:
                release()
            else:
                after(running, release)

    async def _fd_writable(self, fd: int) -> None:
        # The transport owns the socket's own descriptor in the loop; a duplicate can be watched.
        self._write_waiter = waiter = self.loop.create_future()
        self.loop.add_writer(fd, _set_done, waiter)
        self._write_blocked_since = self.server.now
        try:
            await waiter
        finally:
            self.loop.remove_writer(fd)
            self._write_waiter = None
            self._write_blocked_since = None


def _set_done(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class HttpServer:
    """Accepts connections on host:port and hands each request to `handler`.

    Plain HTTP; its subclass strata.gateway.https.HttpsServer serves over TLS (with a connection
    class that sends files through the encryption rather than with sendfile).
    """

    connection_class: type[HttpConnection] = HttpConnection
    ssl: SSLContext | None = None

    def __init__(
        self,
        handler: Handler,
        host: str,
        port: int,
        backlog: int = 1024,
        limits: HttpLimits | None = None,
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.backlog = backlog
        self.limits = limits or HttpLimits()
        self.loop = asyncio.get_running_loop()
        self.now = self.loop.time()  # coarse: moved by the sweep, read by connections
        self.connections: set[HttpConnection] = set()
        self.per_ip: dict[str, int] = {}
        self.closing = False
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._outbox: list[tuple[asyncio.Transport, bytes]] = []

    def write_soon(self, transport: asyncio.Transport, data: bytes) -> None:
        """Send a small response with the others finished in this turn of the loop, back to back:
        a client woken by the first finds the rest already there (fewer wake-ups, on both sides)."""
        if not self._outbox:
            self.loop.call_soon(self.flush)
        self._outbox.append((transport, data))

    def flush(self) -> None:
        """Send what waits in the outbox (before any direct write, so each connection's bytes
        keep their order)."""
        if not self._outbox:
            return
        outbox, self._outbox = self._outbox, []
        for transport, data in outbox:
            if not transport.is_closing():
                transport.write(data)

    async def start(self, serving: bool = True) -> None:
        """Listen (and accept connections at once unless `serving` is False: see `serve`)."""
        raise_open_file_limit()
        connection = self.connection_class
        self._server = await self.loop.create_server(
            lambda: connection(self),
            self.host,
            self.port,
            backlog=self.backlog,
            reuse_address=True,
            ssl=self.ssl,
            # a client that connects and never finishes its handshake is dropped like a slow head
            ssl_handshake_timeout=self.limits.header_timeout if self.ssl is not None else None,
            start_serving=serving,
        )
        self._sweeper = self.loop.call_later(self.limits.sweep_interval, self._sweep)

    async def serve(self) -> None:
        """Accept connections on the socket `start(serving=False)` bound: a server with several
        listeners binds them all first, so none answers a client when another cannot bind."""
        assert self._server is not None
        await self._server.start_serving()

    def _sweep(self) -> None:
        # One timer for all connections rather than one per connection and request: a
        # call_later + cancel per request cost ~7 µs here, a stamp of the coarse clock ~20 ns,
        # and a sweep ~0.5 µs a connection a second (1,000 connections: 0.5 ms a sweep).
        self.now = now = self.loop.time()
        limits = self.limits
        for conn in list(self.connections):
            conn.check_deadlines(now, limits)
        self._sweeper = self.loop.call_later(limits.sweep_interval, self._sweep)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, let requests in flight finish (up to `grace` seconds), close the rest."""
        self.closing = True
        self.flush()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        deadline = self.loop.time() + grace
        while True:
            for conn in list(self.connections):
                if conn._active is None and not conn._pipeline:
                    conn.close()
            if not self.connections or self.loop.time() >= deadline:
                break
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
