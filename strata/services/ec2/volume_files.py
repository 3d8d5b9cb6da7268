"""A plain (unencrypted) volume's live data: one sparse file, and snapshots taken from it in the
background.

Why a file: NBD reads and writes become one pread/pwrite each (the page cache does the rest, as
for `nbdkit file`), and content addressing — hashing and publishing 512 KiB blocks — moves to
snapshot time, where AWS does it too: the first snapshot of a volume copies every written block
and takes a while (`pending`, Progress rising), later ones copy only the blocks written since.

What the device keeps:
- `<data>/ec2/volumes/<id>.img`: the volume's bytes; never-written ranges are holes (no space).
- `base`: for a volume restored from a snapshot, the `block_map` rows of blocks not yet copied
  into the file (AWS's lazy loading): read from the block store until written, then copied into
  the file ("materialised") and the row dropped at the next FLUSH, once the file is durable.
- `changed`: indexes of blocks written since the last snapshot (`ref`), so the next snapshot is
  the last one's map plus those blocks. It lives in memory; the record `volume-file/<id>` says
  whether it was saved by a clean close. After a crash it is unknown and the next snapshot hashes
  every written block (content addressing still stores only blocks no snapshot has).

Space: the file and the snapshots' blocks are separate copies, so a snapshotted volume's data
takes space twice (AWS stores and bills volumes and snapshots separately too). Sharing them —
punching the file's copy of blocks a completed snapshot holds and reading those through `base` —
would cost every later read of them the block store's slower path (no sendfile) and a copy
before the first write, so it is not done.

Durability: a FLUSH (NBD FLUSH, FUA, a snapshot, a detach) fdatasyncs the file before dropping
materialised rows, so an acknowledged flushed write survives kill -9 and power loss.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from strata.services.ec2.limits import BLOCK_SIZE

if TYPE_CHECKING:
    from strata.services.ec2.blocks import BlockStore, Sealer

log = logging.getLogger("strata.ec2.volumes")
BATCH = 64  # blocks (32 MiB) a snapshot job publishes at once
CACHE_BLOCKS = 32
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
_PUNCH_HOLE = 0x01 | 0x02  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE


def punch_hole(fd: int, offset: int, length: int) -> None:
    """Zero a range and give its space back (writes zeros where the file system cannot punch)."""
    if _libc.fallocate(fd, _PUNCH_HOLE, offset, length) == 0:
        return
    if ctypes.get_errno() not in (errno.EOPNOTSUPP, errno.ENOSYS):
        raise OSError(ctypes.get_errno(), "fallocate failed")
    zeros = bytes(min(length, BLOCK_SIZE))
    pos = 0
    while pos < length:
        pos += os.pwrite(fd, zeros[: length - pos], offset + pos)


def allocated_blocks(fd: int, size: int) -> set[int]:
    """Indexes of the blocks that hold data in the file (SEEK_DATA/SEEK_HOLE)."""
    found: set[int] = set()
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                break
            raise
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        found.update(range(start // BLOCK_SIZE, (end + BLOCK_SIZE - 1) // BLOCK_SIZE))
        pos = end
    return found


class SnapshotJob:
    """Copies a volume's changed blocks into a snapshot in the background (a thread).

    `pending` holds the indexes still to read from the file; a write to one of them first hands
    the old contents to the job (`capture`), so the snapshot is the volume as it was when the
    job started, however the volume is written meanwhile."""

    def __init__(self, snapshot_id: str, pending: list[int]) -> None:
        self.snapshot_id = snapshot_id
        self.order = pending
        self.pending = set(pending)
        self.total = len(pending)
        self.done = 0
        self.after: SnapshotJob | None = None  # the volume's snapshot before, still running
        self.ref: str | None = None  # the snapshot whose map, less `todo`, this one shares
        self.todo: set[int] = set()
        self.ref_exists: Callable[[str], bool] = lambda _: False
        self.finished = threading.Event()
        self.failed: Exception | None = None

    def progress(self) -> int:
        """Percent copied (AWS shows 0-100%)."""
        if self.finished.is_set() or not self.total:
            return 100
        return min(99, 100 * self.done // self.total)


class FileDevice:
    """The read/write handle of a plain volume (shared by its NBD connections and snapshots)."""

    def __init__(self, store: BlockStore, owner: str, size: int, sealer: Sealer, path: Path) -> None:
        self.store = store
        self.owner = owner
        self.sealer = sealer
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._size = 0
        self.size = size
        self._lock = threading.RLock()
        self._base: dict[int, str] = store.block_map(owner)
        self._unbased: set[int] = set()  # materialised since the last flush: rows to drop
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._jobs: list[SnapshotJob] = []
        state = store.store.get_doc("volume-file", owner) or {}
        self.ref: str | None = state.get("ref")
        self.changed: set[int] | None = set(state["changed"]) if state.get("clean") else None
        # Until a clean close saves `changed` again, a crash leaves it unknown.
        store.store.put_doc("volume-file", owner, {"clean": False, "ref": self.ref})

    # -- size --------------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self._size

    @size.setter
    def size(self, size: int) -> None:
        if os.fstat(self.fd).st_size < size:
            os.ftruncate(self.fd, size)
        self._size = size

    # -- reads -------------------------------------------------------------------------------------

    def _base_block(self, block_id: str) -> bytes:
        data = self._cache.get(block_id)
        if data is None:
            data = self.store.read_block(block_id, self.sealer)
            self._cache[block_id] = data
            while len(self._cache) > CACHE_BLOCKS:
                self._cache.popitem(last=False)
        return data

    def read(self, offset: int, length: int) -> bytes:
        if not self._base:
            return _pread_full(self.fd, length, offset)
        with self._lock:
            out = bytearray(length)
            view = memoryview(out)
            pos = 0
            while pos < length:
                idx, within = divmod(offset + pos, BLOCK_SIZE)
                n = min(length - pos, BLOCK_SIZE - within)
                block_id = self._base.get(idx)
                if block_id is not None:
                    view[pos : pos + n] = self._base_block(block_id)[within : within + n]
                else:
                    view[pos : pos + n] = _pread_full(self.fd, n, offset + pos)
                pos += n
            return bytes(out)

    def _read_block(self, idx: int) -> bytes:
        block_id = self._base.get(idx)
        if block_id is not None:
            return self._base_block(block_id)
        return _pread_full(self.fd, BLOCK_SIZE, idx * BLOCK_SIZE)

    # -- writes ------------------------------------------------------------------------------------

    def _touch(self, offset: int, length: int) -> None:
        """Before blocks change: hand their old contents to running snapshot jobs, copy restored
        blocks into the file, and remember them as changed. Called under the lock."""
        first, last = offset // BLOCK_SIZE, (offset + length - 1) // BLOCK_SIZE
        for idx in range(first, last + 1):
            for job in self._jobs:
                if idx in job.pending:
                    self._capture(job, idx)
            block_id = self._base.pop(idx, None)
            if block_id is not None:
                whole = offset <= idx * BLOCK_SIZE and offset + length >= (idx + 1) * BLOCK_SIZE
                if not whole:
                    _pwrite_full(self.fd, self._base_block(block_id), idx * BLOCK_SIZE)
                self._unbased.add(idx)
            if self.changed is not None:
                self.changed.add(idx)

    def _capture(self, job: SnapshotJob, idx: int) -> None:
        job.pending.discard(idx)
        self.store.put_blocks(job.snapshot_id, {idx: self._read_block(idx)}, self.sealer)
        job.done += 1

    def _direct(self, offset: int, length: int) -> bool:
        """Whether a write may go to the file without the lock: no snapshot job is reading the
        file and no block of the range still lives in the block store (`_base` only shrinks).

        A snapshot that starts while such a write is under way may or may not hold it (it was
        not acknowledged when the snapshot began: either is a point in time), and the write
        marks its blocks changed only once it landed, so the next snapshot copies them in any
        case."""
        with self._lock:
            if self._jobs:
                return False
            if self._base:
                first, last = offset // BLOCK_SIZE, (offset + length - 1) // BLOCK_SIZE
                return not any(idx in self._base for idx in range(first, last + 1))
            return True

    def _landed(self, offset: int, length: int) -> None:
        with self._lock:
            if self.changed is not None:
                self.changed.update(range(offset // BLOCK_SIZE, (offset + length - 1) // BLOCK_SIZE + 1))

    def write(self, offset: int, data: bytes | memoryview) -> None:
        if self._direct(offset, len(data)):
            _pwrite_full(self.fd, data, offset)
            self._landed(offset, len(data))
            return
        with self._lock:
            self._touch(offset, len(data))
            _pwrite_full(self.fd, data, offset)

    def zero(self, offset: int, length: int) -> None:
        """TRIM / WRITE_ZEROES: the range reads as zeros and takes no space."""
        if self._direct(offset, length):
            punch_hole(self.fd, offset, length)
            self._landed(offset, length)
            return
        with self._lock:
            self._touch(offset, length)
            punch_hole(self.fd, offset, length)

    def file_range(self, offset: int, length: int) -> int | None:
        """The file descriptor to read `length` bytes at `offset` from, when the file holds all of
        them (no block of the range is still only in the block store); else None."""
        if self._base:
            with self._lock:
                first, last = offset // BLOCK_SIZE, (offset + length - 1) // BLOCK_SIZE
                if any(idx in self._base for idx in range(first, last + 1)):
                    return None
        return self.fd

    def extents(self, offset: int, length: int) -> list[tuple[int, bool]]:
        """What of `[offset, offset + length)` holds data: (bytes, is data) runs, in order (NBD
        BLOCK_STATUS). Holes of the file read as zeros, unless the block store still holds them."""
        end = offset + length
        data = data_ranges(self.fd, offset, end)
        if self._base:
            with self._lock:
                based = [idx for idx in self._base if offset // BLOCK_SIZE <= idx <= (end - 1) // BLOCK_SIZE]
            data += [(idx * BLOCK_SIZE, (idx + 1) * BLOCK_SIZE) for idx in based]
        return runs(offset, end, data)

    def flush(self) -> None:
        """Make every write so far durable (then drop the rows of materialised blocks)."""
        with self._lock:
            unbased = dict.fromkeys(self._unbased)
        if self.store.fsync:
            os.fdatasync(self.fd)
        if unbased:
            self.store.put_blocks(self.owner, dict.fromkeys(unbased), self.sealer)
            with self._lock:
                self._unbased.difference_update(unbased)

    # -- snapshots ---------------------------------------------------------------------------------

    def start_snapshot(self, snapshot_id: str, ref_exists: Callable[[str], bool]) -> SnapshotJob:
        """Begin a point-in-time snapshot (flushes first). The job, run by `run_job`, maps the
        last snapshot's blocks and copies the ones changed since; when what changed is unknown
        (after a crash, or the last snapshot was deleted), every block that holds data."""
        self.flush()
        with self._lock:
            ref = self.ref if self.changed is not None else None
            if ref is not None and not ref_exists(ref):
                ref = None
                self.changed = None
            if self.changed is None:
                todo = allocated_blocks(self.fd, self.size) | set(self._base)
            else:
                todo = self.changed
            # Restored blocks never written are mapped as they are; the rest is read from the file.
            self.store.put_map(snapshot_id, {idx: self._base[idx] for idx in todo if idx in self._base})
            job = SnapshotJob(snapshot_id, sorted(idx for idx in todo if idx not in self._base))
            job.ref, job.todo, job.ref_exists = ref, todo, ref_exists
            job.after = self._jobs[-1] if self._jobs else None
            self._jobs.append(job)
            self.changed = set()
            self.ref = snapshot_id
            return job

    def run_job(self, job: SnapshotJob) -> None:
        """Copy the job's blocks (blocking; runs in a thread of its own). Sets `job.failed` when
        the snapshot cannot be completed."""
        try:
            if job.after is not None:  # its map is this one's base
                job.after.finished.wait()
                if job.after.failed is not None:
                    raise RuntimeError(f"the snapshot before, {job.after.snapshot_id}, failed")
            if job.ref is not None:
                with self.store.lock:
                    if not job.ref_exists(job.ref):
                        raise RuntimeError(f"the snapshot before, {job.ref}, was deleted")
                    rows = {i: b for i, b in self.store.block_map(job.ref).items() if i not in job.todo}
                    self.store.put_map(job.snapshot_id, rows)
            batch: dict[int, bytes | bytearray | None] = {}
            for idx in job.order:
                with self._lock:
                    if idx not in job.pending:
                        continue
                    data = self._read_block(idx)
                    job.pending.discard(idx)
                batch[idx] = data
                if len(batch) >= BATCH:
                    self.store.put_blocks(job.snapshot_id, batch, self.sealer)
                    job.done += len(batch)
                    batch = {}
            if batch:
                self.store.put_blocks(job.snapshot_id, batch, self.sealer)
                job.done += len(batch)
        except Exception as e:  # noqa: BLE001 - reported through the job (state "error")
            log.exception("snapshot %s of %s failed", job.snapshot_id, self.owner)
            job.failed = e
            with self._lock:
                self.changed = None  # the next snapshot must not build on this one
        finally:
            with self._lock:
                job.pending.clear()
                self._jobs.remove(job)
            job.finished.set()

    # -- life --------------------------------------------------------------------------------------

    def close(self) -> None:
        """A clean close: flushed, and the changed set saved so the next snapshot stays incremental."""
        self.flush()
        with self._lock:
            clean = not self._jobs and self.changed is not None
            self.store.store.put_doc(
                "volume-file",
                self.owner,
                {"clean": clean, "ref": self.ref, "changed": sorted(self.changed or ())},
            )
            os.close(self.fd)
            self.fd = -1

    def discard(self) -> None:
        """The volume is deleted: close it once its running snapshots have read what they need."""
        for job in list(self._jobs):
            job.finished.wait()
        with self._lock:
            os.close(self.fd)
            self.fd = -1


def data_ranges(fd: int, start: int, end: int) -> list[tuple[int, int]]:
    """The (start, end) ranges of `[start, end)` where the file holds data (SEEK_DATA/SEEK_HOLE)."""
    out = []
    pos = start
    while pos < end:
        try:
            begin = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:  # only a hole from here on
                break
            raise
        if begin >= end:
            break
        stop = min(os.lseek(fd, begin, os.SEEK_HOLE), end)
        out.append((begin, stop))
        pos = stop
    return out


def runs(start: int, end: int, data: list[tuple[int, int]]) -> list[tuple[int, bool]]:
    """`[start, end)` as (bytes, is data) runs, given ranges holding data (any order, overlaps)."""
    out: list[tuple[int, bool]] = []
    pos = start
    for begin, stop in sorted(data):
        begin, stop = max(begin, start), min(stop, end)
        if stop <= pos:
            continue
        if begin > pos:
            out.append((begin - pos, False))
            pos = begin
        if out and out[-1][1]:
            out[-1] = (out[-1][0] + stop - pos, True)
        else:
            out.append((stop - pos, True))
        pos = stop
    if pos < end:
        out.append((end - pos, False))
    return out


def _pread_full(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) == length:
        return data
    out = bytearray(data)
    while len(out) < length:
        more = os.pread(fd, length - len(out), offset + len(out))
        if not more:  # past the end of the file: zeros
            out += bytes(length - len(out))
            break
        out += more
    return bytes(out)


def _pwrite_full(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        pos += os.pwrite(fd, view[pos:], offset + pos)
