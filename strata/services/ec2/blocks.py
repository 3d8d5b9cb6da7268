"""Volumes and snapshots as maps of content-addressed 512 KiB blocks.

Why content addressing: a snapshot is then a copy of its volume's map (instant, point-in-time,
and it stores only the blocks no earlier snapshot or volume already holds), a volume restored
from a snapshot shares every block until it is written (AWS's lazy loading, for free), and
DeleteSnapshot frees exactly the blocks nothing else maps.

Layout: `block_map(owner, idx, block)` rows in the service's MetadataStore say which block holds
block `idx` of a volume or snapshot (`owner` is its id); an unmapped index reads as zeros and
takes no space. Block bodies are files `<dir>/<id[:2]>/<id>`, published atomically (temp file,
fsync, rename, fsync of the directory) before the map row that names them commits, and unlinked
after the commit that drops their last reference. A block of an encrypted volume is addressed by
an HMAC under the volume's data key and stored AES-GCM-sealed, so only owners sharing a data key
share its blocks.

A plain volume's live data is a sparse file (`volume_files.FileDevice`): its blocks enter the
store when a snapshot copies them. An encrypted volume is a block map too (`BlockDevice`): writes
are buffered per device in memory (at most `DIRTY_LIMIT` blocks) until `flush()`, which is what
an NBD FLUSH, a snapshot and a detach call: a flushed write survives kill -9.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from strata.services.ec2.limits import BLOCK_SIZE
from strata.services.ec2.volume_files import FileDevice, runs
from strata.storage.metadata import MetadataStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS block_map (
    owner TEXT NOT NULL,
    idx INTEGER NOT NULL,
    block TEXT NOT NULL,
    PRIMARY KEY (owner, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS block_map_block ON block_map(block);
-- Checksums of the blocks the EBS direct APIs wrote into a pending snapshot (CompleteSnapshot).
CREATE TABLE IF NOT EXISTS direct_puts (
    snapshot TEXT NOT NULL,
    idx INTEGER NOT NULL,
    checksum TEXT NOT NULL,
    PRIMARY KEY (snapshot, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocks (
    block TEXT PRIMARY KEY,
    size INTEGER NOT NULL
) WITHOUT ROWID;
"""
DIRTY_LIMIT = 64  # blocks (32 MiB) buffered per device before a write-back
CACHE_BLOCKS = 64  # decoded blocks (32 MiB) a device keeps for reads
ZERO = bytes(BLOCK_SIZE)
_SYNC_POOL = ThreadPoolExecutor(16, thread_name_prefix="ebs-fsync")


class Sealer:
    """How one owner's blocks are named and stored: plain sha256, or HMAC + AES-GCM under a data key."""

    def __init__(self, data_key: bytes | None = None) -> None:
        self.key = data_key
        self._aead = AESGCM(data_key) if data_key else None

    def block_id(self, plain: bytes) -> str:
        if self.key is None:
            return hashlib.sha256(plain).hexdigest()
        return "e" + hmac.new(self.key, plain, hashlib.sha256).hexdigest()

    def seal(self, block_id: str, plain: bytes) -> bytes:
        if self._aead is None:
            return plain
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plain, block_id.encode())

    def open(self, block_id: str, stored: bytes) -> bytes:
        if self._aead is None:
            return stored
        return self._aead.decrypt(stored[:12], stored[12:], block_id.encode())


class BlockStore:
    """Block files plus the `block_map`/`blocks` tables; thread-safe."""

    def __init__(self, store: MetadataStore, root: Path, *, fsync: bool = True) -> None:
        self.store = store
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(exist_ok=True, mode=0o700)
        for leftover in self.tmp.iterdir():  # temp files of a write a crash interrupted
            leftover.unlink(missing_ok=True)
        self.volumes = self.root.parent / "volumes"
        self.volumes.mkdir(exist_ok=True, mode=0o700)
        self.fsync = fsync
        self.lock = self._lock = threading.RLock()
        self._devices: dict[str, BlockDevice | FileDevice] = {}

    # -- block files -------------------------------------------------------------------------------

    def _path(self, block_id: str) -> Path:
        return self.root / block_id[:2] / block_id

    def read_block(self, block_id: str, sealer: Sealer) -> bytes:
        return sealer.open(block_id, self._path(block_id).read_bytes())

    def _publish_all(self, files: dict[str, bytes]) -> None:
        """Publish block files atomically and durably: every temp file written, then all fsynced
        at once (parallel fsyncs share the file system's journal commits), renamed into place,
        and their directories fsynced."""
        if not files:
            return
        temps = []
        for block_id, stored in files.items():
            tmp = self.tmp / f"{block_id}.{threading.get_ident()}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, stored)
                if self.fsync:
                    temps.append(os.dup(fd))
            finally:
                os.close(fd)
        try:
            if temps:
                list(_SYNC_POOL.map(os.fsync, temps))
        finally:
            for fd in temps:
                os.close(fd)
        dirs = set()
        for block_id in files:
            path = self._path(block_id)
            path.parent.mkdir(exist_ok=True, mode=0o700)
            os.replace(self.tmp / f"{block_id}.{threading.get_ident()}", path)
            dirs.add(path.parent)
        self._sync_dirs(dirs)

    def _sync_dirs(self, dirs: Iterable[Path]) -> None:
        if not self.fsync:
            return
        fds = [os.open(d, os.O_RDONLY) for d in set(dirs)]
        try:
            list(_SYNC_POOL.map(os.fsync, fds))
        finally:
            for fd in fds:
                os.close(fd)

    def put_blocks(
        self, owner: str, blocks: dict[int, bytes | bytearray | None], sealer: Sealer
    ) -> dict[int, str | None]:
        """Map `owner`'s blocks to new contents (None or all zeros: unmapped), durably, at once.

        Returns each index's block id (None: unmapped)."""
        with self._lock:
            rows: list[tuple[int, str | None]] = []
            new: dict[str, int] = {}
            files: dict[str, bytes] = {}
            for idx, plain in blocks.items():
                if plain is None or plain == ZERO:
                    rows.append((idx, None))
                    continue
                block_id = sealer.block_id(plain)
                rows.append((idx, block_id))
                if block_id in new or self._known(block_id):
                    continue
                stored = files[block_id] = sealer.seal(block_id, plain)
                new[block_id] = len(stored)
            self._publish_all(files)
            with self.store.transaction():
                old = self._mapped(owner, [idx for idx, _ in rows])
                self.store.executemany(
                    "INSERT INTO blocks(block, size) VALUES (?, ?) ON CONFLICT DO NOTHING", list(new.items())
                )
                for idx, block_id in rows:
                    if block_id is None:
                        self.store.execute("DELETE FROM block_map WHERE owner = ? AND idx = ?", (owner, idx))
                    else:
                        self.store.execute(
                            "INSERT INTO block_map(owner, idx, block) VALUES (?,?,?) "
                            "ON CONFLICT(owner, idx) DO UPDATE SET block = excluded.block",
                            (owner, idx, block_id),
                        )
                freed = self._unreferenced(old)
            self._unlink(freed)
            return dict(rows)

    def _known(self, block_id: str) -> bool:
        return self.store.query_one("SELECT 1 FROM blocks WHERE block = ?", (block_id,)) is not None

    def _mapped(self, owner: str, indexes: list[int]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(indexes), 500):
            chunk = indexes[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                r[0]
                for r in self.store.query(
                    f"SELECT block FROM block_map WHERE owner = ? AND idx IN ({marks})", (owner, *chunk)
                )
            )
        return found

    def _unreferenced(self, candidates: Iterable[str]) -> list[str]:
        """Of `candidates`, the blocks no owner maps any more, dropped from `blocks` (in a transaction)."""
        freed = []
        for block_id in candidates:
            if self.store.query_one("SELECT 1 FROM block_map WHERE block = ? LIMIT 1", (block_id,)) is None:
                self.store.execute("DELETE FROM blocks WHERE block = ?", (block_id,))
                freed.append(block_id)
        return freed

    def _unlink(self, block_ids: Iterable[str]) -> None:
        for block_id in block_ids:
            self._path(block_id).unlink(missing_ok=True)

    def sweep(self, live_owners: set[str]) -> tuple[int, int]:
        """At start-up: forget maps of owners no record names (a crash between a map and its
        record) and unlink block files no row names (a crash between publish and commit).
        Returns (owners dropped, files removed)."""
        owners = {r[0] for r in self.store.query("SELECT DISTINCT owner FROM block_map")}
        dead = owners - live_owners
        for owner in dead:
            self.drop(owner)
        known = {r[0] for r in self.store.query("SELECT block FROM blocks")}
        removed = 0
        for path in self.volumes.glob("*.img"):
            if path.stem not in live_owners:
                path.unlink(missing_ok=True)
                removed += 1
        for path in self.root.glob("??/*"):
            if path.name not in known:
                path.unlink(missing_ok=True)
                removed += 1
        return len(dead), removed

    # -- maps --------------------------------------------------------------------------------------

    def block_map(self, owner: str) -> dict[int, str]:
        rows = self.store.query("SELECT idx, block FROM block_map WHERE owner = ? ORDER BY idx", (owner,))
        return {r[0]: r[1] for r in rows}

    def block_of(self, owner: str, idx: int) -> str | None:
        row = self.store.query_one("SELECT block FROM block_map WHERE owner = ? AND idx = ?", (owner, idx))
        return row[0] if row else None

    def copy_map(self, source: str, target: str, limit_idx: int | None = None) -> None:
        """`target` maps exactly `source`'s blocks (shared, nothing copied)."""
        with self._lock, self.store.transaction():
            old = set(self.block_map(target).values())
            self.store.execute("DELETE FROM block_map WHERE owner = ?", (target,))
            self.store.execute(
                "INSERT INTO block_map(owner, idx, block) SELECT ?, idx, block FROM block_map "
                "WHERE owner = ? AND idx < ?",
                (target, source, limit_idx if limit_idx is not None else 2**62),
            )
            freed = self._unreferenced(old)
        self._unlink(freed)

    def copy_resealed(self, source: str, source_sealer: Sealer, target: str, target_sealer: Sealer) -> None:
        """`target` holds `source`'s data re-encrypted under another sealer (a real copy)."""
        batch: dict[int, bytes | None] = {}
        for idx, block_id in self.block_map(source).items():
            batch[idx] = self.read_block(block_id, source_sealer)
            if len(batch) >= DIRTY_LIMIT:
                self.put_blocks(target, batch, target_sealer)
                batch = {}
        if batch:
            self.put_blocks(target, batch, target_sealer)

    def drop(self, owner: str) -> None:
        """Forget `owner` (a deleted volume or snapshot); free the blocks only it mapped."""
        with self._lock:
            dev = self._devices.pop(owner, None)
        if isinstance(dev, FileDevice):
            dev.discard()  # after its running snapshots, which read it
        with self._lock:
            (self.volumes / f"{owner}.img").unlink(missing_ok=True)
            with self.store.transaction():
                old = set(self.block_map(owner).values())
                self.store.execute("DELETE FROM block_map WHERE owner = ?", (owner,))
                self.store.delete_doc("volume-file", owner)
                freed = self._unreferenced(old)
            self._unlink(freed)

    def put_map(self, owner: str, rows: dict[int, str]) -> None:
        """Map `owner`'s indexes to blocks the store already holds (shared, nothing written)."""
        if not rows:
            return
        with self._lock, self.store.transaction():
            self.store.executemany(
                "INSERT INTO block_map(owner, idx, block) VALUES (?,?,?) "
                "ON CONFLICT(owner, idx) DO UPDATE SET block = excluded.block",
                [(owner, idx, block_id) for idx, block_id in rows.items()],
            )

    def stored_bytes(self, owner: str, *, besides: str | None = None) -> int:
        """Bytes of the blocks `owner` maps that `besides` does not (all of them without `besides`)."""
        if besides is None:
            sql = (
                "SELECT COALESCE(SUM(b.size), 0) FROM (SELECT DISTINCT block FROM block_map WHERE owner = ?) m "
                "JOIN blocks b ON b.block = m.block"
            )
            return int(self.store.query_one(sql, (owner,))[0])
        sql = (
            "SELECT COALESCE(SUM(b.size), 0) FROM (SELECT DISTINCT block FROM block_map WHERE owner = ? "
            "EXCEPT SELECT block FROM block_map WHERE owner = ?) m JOIN blocks b ON b.block = m.block"
        )
        return int(self.store.query_one(sql, (owner, besides))[0])

    # -- devices -----------------------------------------------------------------------------------

    def device(self, owner: str, size: int, sealer: Sealer) -> BlockDevice | FileDevice:
        """The one read/write handle of a volume (shared by NBD connections and snapshots): a
        sparse file for a plain volume, a block map for an encrypted one."""
        with self._lock:
            dev = self._devices.get(owner)
            if dev is None:
                if sealer.key is None:
                    dev = FileDevice(self, owner, size, sealer, self.volumes / f"{owner}.img")
                else:
                    dev = BlockDevice(self, owner, size, sealer)
                self._devices[owner] = dev
            dev.size = size
            return dev

    def open_device(self, owner: str) -> BlockDevice | FileDevice | None:
        with self._lock:
            return self._devices.get(owner)

    def flush_all(self) -> None:
        with self._lock:
            devices = list(self._devices.values())
        for dev in devices:
            dev.flush()

    def close_all(self) -> None:
        """At a clean stop: every device flushed and closed (a plain volume saves what changed)."""
        with self._lock:
            devices = list(self._devices.values())
            self._devices.clear()
        for dev in devices:
            dev.close()


class BlockDevice:
    """Byte-addressed reads and writes over one owner's block map, with a write-back buffer.

    The device keeps its block map and a small cache of recently used blocks (by block id, so a
    cached block is never stale) in memory: most NBD requests then need no I/O at all.
    """

    def __init__(self, store: BlockStore, owner: str, size: int, sealer: Sealer) -> None:
        self.store = store
        self.owner = owner
        self.size = size
        self.sealer = sealer
        self._dirty: dict[int, bytearray | None] = {}
        self._map: dict[int, str] = store.block_map(owner)
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.RLock()

    def _remember(self, block_id: str, data: bytes) -> None:
        self._cache[block_id] = data
        self._cache.move_to_end(block_id)
        while len(self._cache) > CACHE_BLOCKS:
            self._cache.popitem(last=False)

    def _block(self, idx: int) -> bytes | bytearray | None:
        if idx in self._dirty:
            return self._dirty[idx]
        block_id = self._map.get(idx)
        if block_id is None:
            return None
        data = self._cache.get(block_id)
        if data is None:
            data = self.store.read_block(block_id, self.sealer)
            self._remember(block_id, data)
        else:
            self._cache.move_to_end(block_id)
        return data

    @staticmethod
    def _spans(offset: int, length: int) -> list[tuple[int, int, int]]:
        """(block index, offset within it, bytes) for each block a request touches."""
        out = []
        pos = 0
        while pos < length:
            idx, within = divmod(offset + pos, BLOCK_SIZE)
            n = min(length - pos, BLOCK_SIZE - within)
            out.append((idx, within, n))
            pos += n
        return out

    def read(self, offset: int, length: int) -> bytes:
        with self._lock:
            return self._read(offset, length)

    def _read(self, offset: int, length: int) -> bytes:
        out = bytearray()
        for idx, within, n in self._spans(offset, length):
            data = self._block(idx)
            out += data[within : within + n] if data is not None else bytes(n)
        return bytes(out)

    def write(self, offset: int, data: bytes | memoryview) -> None:
        self._apply(offset, len(data), memoryview(data))

    def file_range(self, offset: int, length: int) -> int | None:
        """No file holds the device's bytes: reads go through `read`."""
        return None

    def extents(self, offset: int, length: int) -> list[tuple[int, bool]]:
        """What of `[offset, offset + length)` holds data: (bytes, is data) runs (NBD BLOCK_STATUS)."""
        end = offset + length
        with self._lock:
            data = [
                (idx * BLOCK_SIZE, (idx + 1) * BLOCK_SIZE)
                for idx in range(offset // BLOCK_SIZE, (end - 1) // BLOCK_SIZE + 1)
                if (idx in self._dirty and self._dirty[idx] is not None)
                or (idx not in self._dirty and idx in self._map)
            ]
        return runs(offset, end, data)

    def zero(self, offset: int, length: int) -> None:
        """TRIM / WRITE_ZEROES: whole blocks become unmapped (no space), partial ones zeroed."""
        self._apply(offset, length, None)

    def _apply(self, offset: int, length: int, view: memoryview | None) -> None:
        with self._lock:
            pos = 0
            for idx, within, n in self._spans(offset, length):
                if n == BLOCK_SIZE:
                    self._dirty[idx] = None if view is None else bytearray(view[pos : pos + n])
                else:
                    current = self._block(idx)
                    if self._dirty.get(idx) is not None:  # already buffered: change it in place
                        current[within : within + n] = bytes(n) if view is None else view[pos : pos + n]
                    elif current is not None or view is not None:
                        block = bytearray(current) if current is not None else bytearray(BLOCK_SIZE)
                        block[within : within + n] = bytes(n) if view is None else view[pos : pos + n]
                        self._dirty[idx] = block
                pos += n
            if len(self._dirty) >= DIRTY_LIMIT:
                self.flush()

    def flush(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            batch: dict[int, bytes | bytearray | None] = dict(self._dirty)
            mapped = self.store.put_blocks(self.owner, batch, self.sealer)
            for idx, block_id in mapped.items():
                if block_id is None:
                    self._map.pop(idx, None)
                else:
                    self._map[idx] = block_id
                    data = batch[idx]
                    if data is not None:
                        self._remember(block_id, data)
            self._dirty.clear()

    def close(self) -> None:
        self.flush()
