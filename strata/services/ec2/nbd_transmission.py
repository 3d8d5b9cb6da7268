"""The NBD transmission phase of one connection: requests read by one thread, served at once or
by a pool.

Why threads with blocking sockets rather than the event loop: a request becomes a few system
calls that run without the GIL, with no task or future per small request. The connection's
thread reads the socket in chunks into a buffer it reuses and parses every request a chunk
holds. Small requests are served on the spot: a write is one `pwrite` straight from that buffer,
a read one `preadv` with RWF_NOWAIT (from the page cache, never waiting for the disk), and their
replies go out together in one `sendmsg` once no more requests are waiting; a large read
(> 64 KiB) is `sendfile`d from the volume's file into the socket. A large write goes to the
connection's pool of threads, so receiving the next one overlaps writing this one to the file
(as nbdkit's threads do): it is received into a buffer of its own and `pwrite`n by the pool.
So is what may wait long: a small read the page cache cannot answer, and FLUSH (and, with
limits on, large reads: the connection's thread paces requests then). Each connection has a
pool of its own (threads started as needed, as in nbdkit), so a connection whose client stops
reading its replies, or a slow FLUSH, holds up no other connection or volume. Every send holds
the send lock; a reply carries its request's handle, so their order does not matter. Memory
stays bounded: at most `IN_FLIGHT` bytes of large requests per connection are in the pool.

Once structured replies are negotiated, a READ is answered in chunks (OFFSET_DATA, then NONE
after a sendfile, since an error may still come up while it runs; ERROR) and BLOCK_STATUS says
which ranges are holes; every other command keeps simple replies, as the protocol allows.

FLUSH makes every write acknowledged before it durable (fdatasync of the volume's file, or the
block map's write-back): a write's reply is sent only after its `pwrite` returned. On DISC every
request finishes and the device is flushed before the connection closes.

While FIS pauses the volume's I/O (aws:ebs:pause-volume-io, `strata.sim.faults.io_pauses`), the
connection's thread holds each new request until the pause ends, as a volume whose I/O is
suspended answers nothing; requests already in the pool finish.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from strata.sim.faults import io_pauses

if TYPE_CHECKING:
    from strata.services.ec2.blocks import BlockDevice
    from strata.services.ec2.performance import VolumeLimiter
    from strata.services.ec2.volume_files import FileDevice

log = logging.getLogger("strata.ec2.nbd")

REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
STRUCTURED_REPLY_MAGIC = 0x668E33EF
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM, CMD_WRITE_ZEROES = 0, 1, 2, 3, 4, 6
CMD_BLOCK_STATUS = 7
_ORDERED = (CMD_READ, CMD_WRITE, CMD_TRIM, CMD_WRITE_ZEROES, CMD_BLOCK_STATUS)  # wait for overlaps
CMD_FLAG_FUA, CMD_FLAG_REQ_ONE = 1, 8
REPLY_FLAG_DONE = 1
TYPE_NONE, TYPE_OFFSET_DATA, TYPE_BLOCK_STATUS, TYPE_ERROR = 0, 1, 5, 2**15 + 1
STATE_HOLE_ZERO = 1 | 2  # base:allocation: NBD_STATE_HOLE | NBD_STATE_ZERO
ALLOCATION_ID = 1  # the id of the one metadata context, base:allocation
MAX_EXTENTS = 256  # descriptors in one BLOCK_STATUS reply at most
EIO, EINVAL, ENOSPC = 5, 22, 28
MAX_REQUEST = 32 * 1024 * 1024
RECV_BUFFER = 32 * 1024  # bytes read off the socket at once (the rest of a large payload bypasses it)
SMALL = 64 * 1024  # requests up to this size are served by the connection's thread
QUEUED_REPLIES = 256 * 1024  # reply bytes held back for one sendmsg at most
IN_FLIGHT = 64 * 1024 * 1024  # bytes of large requests of one connection in the pool at most
FREE_BUFFERS = 16  # large-write buffers a connection keeps for reuse
_REQUEST = struct.Struct(">IHHQQI")
_REPLY = struct.Struct(">IIQ")
_CHUNK = struct.Struct(">IHHQI")
_NOWAIT = getattr(os, "RWF_NOWAIT", 0)
POOL_THREADS = 16  # worker threads of one connection at most (nbdkit's default too)


@dataclass
class Negotiated:
    """What the handshake agreed on besides the export."""

    structured: bool = False  # NBD_OPT_STRUCTURED_REPLY: reads answered in chunks
    allocation: bool = False  # the base:allocation context: BLOCK_STATUS answered


class Closed(Exception):
    """The client went away (EOF, reset) or broke the protocol: the connection ends."""


def recv_exact(sock: socket.socket, view: memoryview) -> None:
    """Fill `view` from the socket (blocking); Closed at EOF."""
    pos, size = 0, len(view)
    while pos < size:
        n = sock.recv_into(view[pos:], size - pos, socket.MSG_WAITALL)
        if n == 0:
            raise Closed
        pos += n


def send_parts(sock: socket.socket, parts: list[bytes | bytearray | memoryview], flags: int = 0) -> None:
    """Send every part, in order, with as few system calls as the socket allows."""
    views = [memoryview(p).cast("B") for p in parts]
    while views:
        sent = sock.sendmsg(views, [], flags)
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            views.pop(0)
        if views and sent:
            views[0] = views[0][sent:]


class Transmission:
    """Serves one connection to one device until DISC, EOF or a shutdown of its socket."""

    def __init__(
        self,
        sock: socket.socket,
        dev: BlockDevice | FileDevice,
        limiter: VolumeLimiter | None,
        negotiated: Negotiated | None = None,
        io: list[int] | None = None,
    ) -> None:
        self.negotiated = negotiated or Negotiated()
        # [reads, bytes read, writes, bytes written] this connection received (CloudWatch's
        # VolumeReadOps ...): written by the connection's thread only, read by the publisher
        self.io = io if io is not None else [0, 0, 0, 0]
        self.sock = sock
        self.dev = dev
        self.limiter = limiter
        self._send = threading.Lock()
        self._queued: list[bytes | bytearray | memoryview] = []
        self._queued_bytes = 0
        self._workers = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="nbd-io")
        self._pool = threading.Condition()  # guards the four below
        self._in_pool = 0
        self._pool_bytes = 0
        self._free: list[bytearray] = []
        # Byte ranges [start, end) of writes in the pool: a later request overlapping one waits
        # for it, so overlapping requests take effect in the order sent (a WRITE_ZEROES served on
        # the spot overtook the pool's large write under it, and a read could see the old bytes).
        self._writing: dict[int, tuple[int, int]] = {}
        self._writes = itertools.count()

    # -- the connection's thread -------------------------------------------------------------------

    def run(self) -> None:
        """Serve until the end (blocking); returns once the pool has finished its requests too."""
        try:
            self._loop()
        finally:
            with self._pool:
                self._pool.wait_for(lambda: self._in_pool == 0)
            self._workers.shutdown(wait=False)

    def _loop(self) -> None:
        rbuf = bytearray(SMALL + RECV_BUFFER)
        view = memoryview(rbuf)
        io = self.io
        start = end = 0
        while True:
            if end - start < _REQUEST.size:
                if start:
                    rbuf[: end - start] = view[start:end]
                    end, start = end - start, 0
                end += self._fill(view, end)
                continue
            magic, flags, kind, handle, offset, length = _REQUEST.unpack_from(rbuf, start)
            if magic != REQUEST_MAGIC:
                raise Closed
            start += _REQUEST.size
            if kind == CMD_DISC:
                self._flush_replies()
                with self._pool:
                    self._pool.wait_for(lambda: self._in_pool == 0)
                self.dev.flush()
                return
            payload: memoryview | bytearray | None = None
            if kind == CMD_READ:
                io[0] += 1
                io[1] += length
            elif kind == CMD_WRITE:
                io[2] += 1
                io[3] += length
                have = min(length, end - start)
                if length <= SMALL:  # all of it in the receive buffer
                    if have < length:
                        rbuf[: end - start] = view[start:end]
                        end, start = end - start, 0
                        recv_exact(self.sock, view[end:length])
                        end = length
                    payload = view[start : start + length]
                    start += length
                else:  # received into a buffer of its own (the pool writes it)
                    payload = self._payload(view[start : start + have], length)
                    start += have
            if io_pauses.paused and io_pauses.holds(self.dev.owner):
                self._flush_replies()  # what was served before the pause is answered
                if not io_pauses.wait(self.dev.owner, self._shut_down):
                    raise Closed
            if self.limiter is not None and kind in (CMD_READ, CMD_WRITE) and length <= MAX_REQUEST:
                wait = self.limiter.admit(length)
                if wait > 0:
                    self._flush_replies()
                    time.sleep(wait)
            self._request(flags, kind, handle, offset, length, payload)

    def _shut_down(self) -> bool:
        """Whether the connection was shut down (detach, stop) or closed by the client."""
        try:
            return self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _fill(self, view: memoryview, end: int) -> int:
        """Read what the socket holds into `view[end:]`; if nothing yet, send the queued replies
        first and then wait for more."""
        try:
            n = self.sock.recv_into(view[end:], RECV_BUFFER, socket.MSG_DONTWAIT)
        except BlockingIOError:
            self._flush_replies()
            n = self.sock.recv_into(view[end:], RECV_BUFFER)
        if n == 0:
            raise Closed
        return n

    def _payload(self, present: memoryview, length: int) -> bytearray | None:
        """A write's bytes, the first of them already in the receive buffer; None (the bytes are
        dropped) when the request is too large to serve."""
        if length > MAX_REQUEST:
            rest, chunk = length - len(present), memoryview(bytearray(min(length, 1024 * 1024)))
            while rest:
                n = min(rest, len(chunk))
                recv_exact(self.sock, chunk[:n])
                rest -= n
            return None
        buf = self._buffer(length)
        wview = memoryview(buf)
        wview[: len(present)] = present
        recv_exact(self.sock, wview[len(present) : length])
        return buf

    def _room(self, length: int) -> None:
        """Wait until the pool may take `length` more bytes of this connection's requests."""
        with self._pool:
            self._pool.wait_for(lambda: self._pool_bytes + length <= IN_FLIGHT or not self._in_pool)

    def _buffer(self, length: int) -> bytearray:
        """A buffer of at least `length` bytes, once the pool has room for that many more."""
        self._room(length)
        with self._pool:
            for i, buf in enumerate(self._free):
                if len(buf) >= length:
                    return self._free.pop(i)
        return bytearray(length)

    # -- requests ----------------------------------------------------------------------------------

    def _request(
        self,
        flags: int,
        kind: int,
        handle: int,
        offset: int,
        length: int,
        payload: memoryview | bytearray | None,
    ) -> None:
        dev = self.dev
        if self._writing and kind in _ORDERED:
            self._after_overlapping(offset, length)
        if kind == CMD_READ:
            if length > MAX_REQUEST or offset + length > dev.size:
                return self._queue(self._head(EINVAL, handle))
            return self._read(handle, offset, length)
        if kind == CMD_BLOCK_STATUS:
            return self._block_status(flags, handle, offset, length)
        if length > MAX_REQUEST:
            return self._reply(EINVAL, handle)
        if kind in (CMD_WRITE, CMD_TRIM, CMD_WRITE_ZEROES) and offset + length > dev.size:
            return self._reply(ENOSPC, handle)
        if kind == CMD_FLUSH:
            return self._in_pool_do(0, self._flush, handle)
        if kind == CMD_WRITE and isinstance(payload, bytearray):
            span = next(self._writes)
            with self._pool:
                self._writing[span] = (offset, offset + length)
            return self._in_pool_do(length, self._write, handle, flags, offset, length, payload, span=span)
        if kind not in (CMD_WRITE, CMD_TRIM, CMD_WRITE_ZEROES):
            return self._reply(EINVAL, handle)
        try:
            if kind == CMD_WRITE:
                assert isinstance(payload, memoryview)  # large ones went to the pool
                dev.write(offset, payload)
            else:
                dev.zero(offset, length)
            if flags & CMD_FLAG_FUA:
                dev.flush()
        except Exception:  # noqa: BLE001 - the client gets EIO, the log the cause
            log.exception("NBD command %s on %s failed", kind, dev.owner)
            return self._reply(EIO, handle)
        return self._reply(0, handle)

    def _read(self, handle: int, offset: int, length: int) -> None:
        fd = self.dev.file_range(offset, length)
        if fd is not None and length > SMALL and self.limiter is None:
            # sendfile'd by this thread: a hop to the pool costs more than it overlaps. With
            # limits on, this thread paces the requests, so serving must not hold it up.
            self._flush_replies()
            self._read_in_pool(handle, fd, offset, length)
            return None
        if fd is None or length > SMALL:
            self._room(length)
            return self._in_pool_do(length, self._read_in_pool, handle, fd, offset, length)
        buf = bytearray(length)
        if _NOWAIT:
            try:
                if os.preadv(fd, [buf], offset, _NOWAIT) == length:
                    return self._queue(self._head(0, handle, offset, length), buf)
            except BlockingIOError:
                pass
        return self._in_pool_do(length, self._read_in_pool, handle, fd, offset, length)

    def _head(self, error: int, handle: int, offset: int = 0, length: int = 0, *, done: bool = True) -> bytes:
        """What goes before a READ's data, or its whole error reply: a simple reply, or the
        structured chunk (OFFSET_DATA; NONE for no bytes; ERROR) once negotiated. `done=False`
        when an error may still come up while the data is sent (a NONE chunk follows then)."""
        if not self.negotiated.structured:
            return _REPLY.pack(SIMPLE_REPLY_MAGIC, error, handle)
        if error:
            return _CHUNK.pack(STRUCTURED_REPLY_MAGIC, REPLY_FLAG_DONE, TYPE_ERROR, handle, 6) + struct.pack(
                ">IH", error, 0
            )
        if not length:
            return _CHUNK.pack(STRUCTURED_REPLY_MAGIC, REPLY_FLAG_DONE, TYPE_NONE, handle, 0)
        flags = REPLY_FLAG_DONE if done else 0
        return _CHUNK.pack(STRUCTURED_REPLY_MAGIC, flags, TYPE_OFFSET_DATA, handle, 8 + length) + struct.pack(
            ">Q", offset
        )

    def _block_status(self, flags: int, handle: int, offset: int, length: int) -> None:
        """Which of the range holds data (base:allocation): never-written ranges are holes."""
        if not self.negotiated.allocation or not length or offset + length > self.dev.size:
            return self._reply(EINVAL, handle)
        try:
            extents = self.dev.extents(offset, length)
        except Exception:  # noqa: BLE001 - the client gets EIO, the log the cause
            log.exception("NBD block status of %s failed", self.dev.owner)
            return self._reply(EIO, handle)
        extents = extents[:1] if flags & CMD_FLAG_REQ_ONE else extents[:MAX_EXTENTS]
        payload = struct.pack(">I", ALLOCATION_ID) + b"".join(
            struct.pack(">II", n, 0 if data else STATE_HOLE_ZERO) for n, data in extents
        )
        head = _CHUNK.pack(STRUCTURED_REPLY_MAGIC, REPLY_FLAG_DONE, TYPE_BLOCK_STATUS, handle, len(payload))
        return self._queue(head + payload)

    def _reply(self, error: int, handle: int) -> None:
        """A simple reply (every command but READ and BLOCK_STATUS may have one)."""
        self._queue(_REPLY.pack(SIMPLE_REPLY_MAGIC, error, handle))

    def _queue(self, head: bytes, data: bytes | bytearray | None = None) -> None:
        self._queued.append(head)
        if data is not None:
            self._queued.append(data)
            self._queued_bytes += len(data)
        if self._queued_bytes >= QUEUED_REPLIES or len(self._queued) >= 64:
            self._flush_replies()

    def _flush_replies(self) -> None:
        if self._queued:
            parts, self._queued, self._queued_bytes = self._queued, [], 0
            with self._send:
                send_parts(self.sock, parts)

    # -- in the pool -------------------------------------------------------------------------------

    def _after_overlapping(self, offset: int, length: int) -> None:
        """Wait until no write in the pool overlaps [offset, offset + length)."""
        end = offset + max(length, 1)
        with self._pool:
            self._pool.wait_for(
                lambda: not any(start < end and offset < stop for start, stop in self._writing.values())
            )

    def _in_pool_do(
        self, size: int, fn: Callable[..., None], handle: int, *args: object, span: int | None = None
    ) -> None:
        with self._pool:
            self._in_pool += 1
            self._pool_bytes += size
        self._workers.submit(self._pooled, size, span, fn, handle, *args)

    def _pooled(
        self, size: int, span: int | None, fn: Callable[..., None], handle: int, *args: object
    ) -> None:
        try:
            fn(handle, *args)
        except OSError:
            self._abort()  # the reply could not be sent whole: the connection ends
        except Exception:  # noqa: BLE001 - logged; the connection ends
            log.exception("NBD request on %s failed", self.dev.owner)
            self._abort()
        finally:
            with self._pool:
                self._in_pool -= 1
                self._pool_bytes -= size
                if span is not None:
                    del self._writing[span]
                self._pool.notify_all()

    def _abort(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send_reply(self, error: int, handle: int, *data: bytes | bytearray | memoryview) -> None:
        with self._send:
            send_parts(self.sock, [_REPLY.pack(SIMPLE_REPLY_MAGIC, error, handle), *data])

    def _flush(self, handle: int) -> None:
        try:
            self.dev.flush()
        except Exception:  # noqa: BLE001 - the client gets EIO, the log the cause
            log.exception("NBD flush of %s failed", self.dev.owner)
            return self._send_reply(EIO, handle)
        return self._send_reply(0, handle)

    def _write(self, handle: int, flags: int, offset: int, length: int, buf: bytearray) -> None:
        error = 0
        try:
            self.dev.write(offset, memoryview(buf)[:length])
            if flags & CMD_FLAG_FUA:
                self.dev.flush()
        except Exception:  # noqa: BLE001 - the client gets EIO, the log the cause
            log.exception("NBD write on %s failed", self.dev.owner)
            error = EIO
        with self._pool:
            if len(self._free) < FREE_BUFFERS:
                self._free.append(buf)
        self._send_reply(error, handle)

    def _read_in_pool(self, handle: int, fd: int | None, offset: int, length: int) -> None:
        """A read that may wait for the disk: sendfile from the volume's file when it holds the
        range, else through the device. An error before the reply's head went out is an EIO
        reply; after, it can only end the connection."""
        if fd is not None and length > SMALL:
            with self._send:
                send_parts(self.sock, [self._head(0, handle, offset, length, done=False)], socket.MSG_MORE)
                _sendfile_all(self.sock, fd, offset, length)
                if self.negotiated.structured:
                    send_parts(self.sock, [self._head(0, handle)])
            return None
        try:
            if fd is None:
                data: bytes | bytearray = self.dev.read(offset, length)
            else:
                data = bytearray(length)
                _pread_into(fd, memoryview(data), offset)
        except Exception:  # noqa: BLE001 - the client gets EIO, the log the cause
            log.exception("NBD read on %s failed", self.dev.owner)
            with self._send:
                send_parts(self.sock, [self._head(EIO, handle)])
            return None
        with self._send:
            send_parts(self.sock, [self._head(0, handle, offset, length), data])
        return None


def _pread_into(fd: int, view: memoryview, offset: int) -> None:
    pos = 0
    while pos < len(view):
        n = os.preadv(fd, [view[pos:]], offset + pos)
        if n == 0:  # past the end of the file: zeros
            view[pos:] = bytes(len(view) - pos)
            return
        pos += n


def _sendfile_all(sock: socket.socket, fd: int, offset: int, length: int) -> None:
    out = sock.fileno()
    end = offset + length
    while offset < end:
        n = os.sendfile(out, fd, offset, end - offset)
        if n == 0:  # past the end of the file: zeros
            send_parts(sock, [bytes(end - offset)])
            return
        offset += n
