"""The NBD transmission phase of one connection: requests read, served and answered by threads.

Why threads with blocking sockets rather than the event loop: every request becomes a few system
calls that run without the GIL — `recv_into` a buffer the thread reuses, `pwrite` from it, and for
reads of a plain volume `os.sendfile` from the volume's file straight into the socket — with no
per-request task, future or executor hop. Python then costs microseconds per request, so the
data path runs at a good fraction of `nbdkit file`.

`WORKERS` threads serve one connection: they take turns reading a request off the socket (the
receive lock), serve it on their own, and send the reply under the send lock. So a client with
several requests in flight (qemu-img, nbdcopy) keeps several of them running at once, and replies
go out in the order requests finish (each carries its handle). Memory stays bounded: each worker
holds one request.

FLUSH makes every write acknowledged before it durable (fdatasync of the volume's file, or the
block map's write-back): a write's reply is sent only after its `pwrite` returned.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strata.services.ec2.blocks import BlockDevice
    from strata.services.ec2.performance import VolumeLimiter
    from strata.services.ec2.volume_files import FileDevice

log = logging.getLogger("strata.ec2.nbd")

REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM, CMD_WRITE_ZEROES = 0, 1, 2, 3, 4, 6
CMD_FLAG_FUA = 1
EIO, EINVAL, ENOSPC = 5, 22, 28
MAX_REQUEST = 32 * 1024 * 1024
WORKERS = 4  # threads serving one connection's requests at once
KEEP_BUFFER = 1024 * 1024  # a worker keeps a buffer up to this size between requests
_REQUEST = struct.Struct(">IHHQQI")
_REPLY = struct.Struct(">IIQ")
_SENDFILE_MIN = 64 * 1024  # smaller reads: one pread + one send beat header + sendfile


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


def _send_all(sock: socket.socket, data: bytes | memoryview, flags: int = 0) -> None:
    view = memoryview(data)
    while view:
        view = view[sock.send(view, flags) :]


class Transmission:
    """Serves one connection to one device until DISC, EOF or `shutdown`."""

    def __init__(
        self, sock: socket.socket, dev: BlockDevice | FileDevice, limiter: VolumeLimiter | None
    ) -> None:
        self.sock = sock
        self.dev = dev
        self.limiter = limiter
        self._recv = threading.Lock()
        self._send = threading.Lock()
        self._done = False  # no more requests are read (DISC, EOF, error)
        self._disc = False

    def run(self) -> None:
        """Serve until the end (blocking): WORKERS threads, this one among them; on DISC, every
        request finishes and the device is flushed before the connection closes."""
        helpers = [
            threading.Thread(target=self._worker, name=f"nbd-{self.dev.owner}", daemon=True)
            for _ in range(WORKERS - 1)
        ]
        for t in helpers:
            t.start()
        self._worker()
        for t in helpers:
            t.join()
        if self._disc:
            self.dev.flush()

    def _stop_reading(self) -> None:
        self._done = True
        try:
            self.sock.shutdown(socket.SHUT_RD)  # wakes a worker blocked in recv
        except OSError:
            pass

    def _worker(self) -> None:
        header = bytearray(_REQUEST.size)
        hview = memoryview(header)
        buf = bytearray(0)
        try:
            while True:
                with self._recv:
                    if self._done:
                        return
                    recv_exact(self.sock, hview)
                    magic, flags, kind, handle, offset, length = _REQUEST.unpack_from(header)
                    if magic != REQUEST_MAGIC:
                        raise Closed
                    if kind == CMD_DISC:
                        self._disc = True
                        raise Closed
                    if kind == CMD_WRITE:
                        if length > MAX_REQUEST:  # read and dropped: answered EINVAL
                            self._skip(length)
                        else:
                            if len(buf) < length:
                                buf = bytearray(length)
                            recv_exact(self.sock, memoryview(buf)[:length])
                if self.limiter is not None and kind in (CMD_READ, CMD_WRITE) and length <= MAX_REQUEST:
                    wait = self.limiter.admit(length)
                    if wait > 0:
                        time.sleep(wait)
                buf = self._serve(buf, flags, kind, handle, offset, length)
                if len(buf) > KEEP_BUFFER:
                    buf = bytearray(0)
        except (Closed, ConnectionError, OSError):
            self._stop_reading()
        except Exception:  # noqa: BLE001 - one broken connection must not take the server down
            log.exception("NBD connection to %s failed", self.dev.owner)
            self._stop_reading()

    def _skip(self, length: int) -> None:
        chunk = memoryview(bytearray(min(length, 1024 * 1024)))
        while length:
            n = min(length, len(chunk))
            recv_exact(self.sock, chunk[:n])
            length -= n

    def _serve(
        self, buf: bytearray, flags: int, kind: int, handle: int, offset: int, length: int
    ) -> bytearray:
        """Do one request and reply; returns the worker's buffer (a read may have grown it)."""
        dev = self.dev
        error = 0
        if length > MAX_REQUEST:
            error = EINVAL
        elif kind in (CMD_READ, CMD_WRITE, CMD_TRIM, CMD_WRITE_ZEROES) and offset + length > dev.size:
            error = ENOSPC if kind != CMD_READ else EINVAL
        else:
            try:
                if kind == CMD_READ:
                    return self._read(buf, handle, offset, length)
                if kind == CMD_WRITE:
                    dev.write(offset, memoryview(buf)[:length])
                elif kind in (CMD_TRIM, CMD_WRITE_ZEROES):
                    dev.zero(offset, length)
                elif kind == CMD_FLUSH:
                    dev.flush()
                else:
                    error = EINVAL
                if not error and flags & CMD_FLAG_FUA and kind in (CMD_WRITE, CMD_WRITE_ZEROES, CMD_TRIM):
                    dev.flush()
            except Exception:  # noqa: BLE001 - the client gets EIO, the log the cause
                log.exception("NBD command %s on %s failed", kind, dev.owner)
                error = EIO
        with self._send:
            _send_all(self.sock, _REPLY.pack(SIMPLE_REPLY_MAGIC, error, handle))
        return buf

    def _read(self, buf: bytearray, handle: int, offset: int, length: int) -> bytearray:
        """A READ: straight from the volume's file when it holds the range (sendfile), else
        through the device; an error before the first byte is an EIO reply."""
        head = _REPLY.pack(SIMPLE_REPLY_MAGIC, 0, handle)
        fd = self.dev.file_range(offset, length)
        if fd is not None and length >= _SENDFILE_MIN:
            with self._send:
                _send_all(self.sock, head, socket.MSG_MORE)
                _sendfile_all(self.sock, fd, offset, length)  # a failure here ends the connection
            return buf
        try:
            if fd is not None:
                if len(buf) < length:
                    buf = bytearray(length)
                data: memoryview | bytes = memoryview(buf)[:length]
                _pread_into(fd, data, offset)
            else:
                data = self.dev.read(offset, length)
        except Exception:  # noqa: BLE001 - the client gets EIO, the log the cause
            log.exception("NBD read on %s failed", self.dev.owner)
            with self._send:
                _send_all(self.sock, _REPLY.pack(SIMPLE_REPLY_MAGIC, EIO, handle))
            return buf
        with self._send:
            _send_all(self.sock, head, socket.MSG_MORE)
            _send_all(self.sock, data)
        return buf


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
            _send_all(sock, bytes(end - offset))
            return
        offset += n
