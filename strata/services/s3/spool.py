"""A large request body on its way to disk: hashed and written in parallel, straight to the device.

The event loop copies incoming chunks into one of two page-aligned batch buffers. When a buffer
is full, one worker thread hashes it while another writes it (hashlib and os.write both release
the GIL), and the loop fills the other buffer meanwhile; so an upload runs at the speed of the
slowest of receive, MD5 and disk, not their sum.

Writes use O_DIRECT where the filesystem allows it: the bytes go to the device as they arrive,
so the fsync at publish has almost nothing left to do, and no page-cache pages are allocated
(allocating fresh page cache was the largest cost of a buffered large write on our VMs). The
last, partial batch is padded to the 4 KiB alignment O_DIRECT needs and the file truncated back
to its real size. Where O_DIRECT is refused, writes are buffered and the dirty pages are pushed
to disk every FLUSH_EVERY bytes beside the upload instead.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import mmap
import os
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from strata.storage import BlobStore

BATCH = 8 * 1024 * 1024
ALIGN = 4096
# Buffered (non-O_DIRECT) uploads start their disk writeback every this many bytes.
FLUSH_EVERY = 16 * 1024 * 1024
# Batch buffers kept for reuse (two uploads' worth: fresh pages are slow to fault in on our VMs);
# the rest are unmapped.
_KEEP = 4
_free: list[mmap.mmap] = []


def _take() -> mmap.mmap:
    return _free.pop() if _free else mmap.mmap(-1, BATCH)


def _give(buf: mmap.mmap) -> None:
    if len(_free) < _KEEP:
        _free.append(buf)
    else:
        try:
            buf.close()
        except BufferError:  # a view still exists; the mapping goes with the last view
            pass


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        try:
            n = os.write(fd, view)
        except OSError as e:
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            if e.errno != errno.EINVAL or not flags & os.O_DIRECT:
                raise
            # The device wants a larger alignment than ours: go on buffered (nothing was written).
            fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_DIRECT)
            continue
        view = view[n:]


class _SealedWriter:
    """Seals a body's batches straight into a page-aligned buffer and writes it in whole 4 KiB
    blocks, so sealed uploads keep O_DIRECT; the bytes that do not fill a block move to the
    buffer's start for the next batch, and the last block is padded (`size` is the true length
    the file is truncated back to)."""

    def __init__(self, seal: Any, fd: int) -> None:
        self.seal = seal
        self.fd = fd
        self.size = 0
        self._fill = 0
        room = ALIGN + seal.max_out(BATCH)
        self._buf = mmap.mmap(-1, room + (-room) % mmap.PAGESIZE)

    def _write(self, n: int, last: bool) -> None:
        total = self._fill + n
        whole = total if last else total - total % ALIGN
        padded = whole + (-whole) % ALIGN
        with memoryview(self._buf) as view:
            if padded > whole:
                view[whole:padded] = bytes(padded - whole)
            if padded:
                _write_all(self.fd, view[:padded])
            self._fill = total - whole
            view[: self._fill] = view[whole:total]
        self.size += whole

    def feed(self, batch: memoryview) -> None:
        with memoryview(self._buf) as view:
            n = self.seal.feed_into(batch, view[self._fill :])
        self._write(n, last=False)

    def finish(self) -> None:
        with memoryview(self._buf) as view:
            n = self.seal.finish_into(view[self._fill :])
        self._write(n, last=True)
        self.close()

    def close(self) -> None:
        try:
            self._buf.close()
        except BufferError:  # a view is still alive (a failed write's traceback): it goes with it
            pass


class Spool:
    """Receives a body batch by batch into a temp file; `finish()` or `abort()` ends it.

    `hash_view(view)` is called (in a worker thread) for every byte of the body, in order. With
    `seal` (an encryption.Encryptor) the file gets the body's ciphertext: each batch is sealed in
    the writing thread just before it is written (batches go one after another, so in order), in
    whole blocks so that O_DIRECT still applies (`_SealedWriter`).
    """

    def __init__(
        self,
        blobs: BlobStore,
        hash_view: Callable[[memoryview], None],
        pool: Executor,
        seal: Any = None,
    ) -> None:
        self.path: Path
        self._sealed: _SealedWriter | None = None
        self.path, self._fd, self._direct = blobs.open_temp_fd(direct=True)
        if seal is not None:
            self._sealed = _SealedWriter(seal, self._fd)
        self._hash = hash_view
        self._pool = pool
        self._flush_dirty = blobs.fsync and not self._direct
        self._bufs = [_take(), _take()]
        self._cur = 0
        self._fill = 0
        self._size = 0
        self._padded = False
        self._unflushed = 0
        self._pending: asyncio.Future | None = None
        self._flushing: asyncio.Future | None = None

    async def add(self, chunk: bytes) -> None:
        """Copy `chunk` in, handing each full batch to the workers."""
        n = len(chunk)
        room = BATCH - self._fill
        if n < room:
            self._bufs[self._cur][self._fill : self._fill + n] = chunk
            self._fill += n
            return
        view = memoryview(chunk)
        while view:
            take = min(len(view), BATCH - self._fill)
            self._bufs[self._cur][self._fill : self._fill + take] = view[:take]
            self._fill += take
            view = view[take:]
            if self._fill == BATCH:
                await self._submit()

    async def _submit(self) -> None:
        """Hash and write the current buffer in the background; switch to the other one."""
        loop = asyncio.get_running_loop()
        if self._pending is not None:
            await self._pending  # the other buffer is free again
            self._pending = None
        buf, length = self._bufs[self._cur], self._fill
        padded = length
        if self._direct and length % ALIGN:
            padded = length + ALIGN - length % ALIGN
            buf[length:padded] = bytes(padded - length)
            self._padded = True
        view = memoryview(buf)
        if self._sealed is not None:
            write = loop.run_in_executor(self._pool, self._sealed.feed, view[:length])
        else:
            write = loop.run_in_executor(self._pool, _write_all, self._fd, view[:padded])
        self._pending = asyncio.gather(loop.run_in_executor(self._pool, self._hash, view[:length]), write)
        self._size += length
        self._cur ^= 1
        self._fill = 0
        if self._flush_dirty:
            self._unflushed += length
            if self._unflushed >= FLUSH_EVERY and (self._flushing is None or self._flushing.done()):
                self._flushing = loop.run_in_executor(self._pool, os.fdatasync, self._fd)
                self._unflushed = 0

    async def finish(self) -> int:
        """Write the last partial batch, wait for every worker, close the file; returns the size."""
        if self._fill:
            await self._submit()
        await self._drain(raise_errors=True)
        if self._sealed is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._sealed.finish)
            os.ftruncate(self._fd, self._sealed.size)  # drop the zeros of the last block
        elif self._padded:
            os.ftruncate(self._fd, self._size)  # drop the zeros the last O_DIRECT write needed
        self._close()
        return self._size

    async def abort(self) -> None:
        """Stop after the workers are done (their errors are dropped: the caller reports its own)."""
        await self._drain(raise_errors=False)
        self._close()

    async def _drain(self, *, raise_errors: bool) -> None:
        for name in ("_pending", "_flushing"):
            fut: Any = getattr(self, name)
            setattr(self, name, None)
            if fut is None:
                continue
            try:
                await fut
            except Exception:
                if raise_errors:
                    raise

    def _close(self) -> None:
        if self._sealed is not None:
            self._sealed.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        for buf in self._bufs:
            _give(buf)
        self._bufs = []
