"""Moving a file system made before volumes onto an ext4 volume of its own, when Strata starts.

Why: ganesha (FSAL_VFS) opens whatever a filehandle names on the file system its export is on. A
file system kept as a plain directory of the data dir shares the host's disk, so a filehandle put
together by hand reached any file of the host as root. Each file system created since then has a
volume of its own (strata.storage.encrypted_volumes, made without a key), and a handle naming
anything outside it is stale; this module gives the same to the ones created before.

The move, in an order a kill -9 at any point survives:
1. a volume left by a move cut short is removed (the record says plain directory: it holds
   nothing the directory does not), and a new one made, sized like a new file system's;
2. the tree is copied (`copy_argv`: owners, modes, ACLs, xattrs, access and modification times,
   hard links, symlinks, special files, holes), then the volume is flushed (syncfs: the loop
   device's flush passes on to the image);
3. in one transaction: the record says "volume", and the lifecycle's rows keyed by inode (the
   `ia` and `accessed` tables, strata.services.efs.usage) move to the copies' inode numbers;
4. the plain directory is removed; one a kill left behind is removed at the next start
   (`remove_leftover`).
Until step 3 commits the plain directory is the file system; after it, the volume is.

A client that kept a filehandle across the restart gets NFS4ERR_STALE for it (the files are new
inodes on another file system) and looks the path up again, as after any server move.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
from pathlib import Path

from strata.engines.process import EngineError, run_as
from strata.storage.encrypted_volumes import EncryptedVolumes, EncryptionError
from strata.storage.metadata import MetadataStore

log = logging.getLogger("strata.efs")
# rsync opens the files it reads with O_NOATIME: a copy cut short by a kill must not leave every
# file looking read (the lifecycle takes a read from the atime, strata.services.efs.reads).
RSYNC = ["rsync", "-aHAXUS", "--numeric-ids", "--open-noatime", "--"]
# Without rsync: cp, with what it keeps named one by one (`cp -a`, preserve=all, lets a failure to
# copy extended attributes pass silently); its reads do set the source's atimes.
CP = ["cp", "-R", "--no-dereference", "--preserve=mode,ownership,timestamps,links,xattr", "--"]
COPY_TIMEOUT = 7 * 86400.0  # the copy is as long as the tree is large; a kill -9 is the way out
_TABLES = ("ia", "accessed")  # the lifecycle's per-inode tables: (fs, ino, ...)
_libc = ctypes.CDLL(None, use_errno=True)


def move_to_own_volume(store: MetadataStore, volumes: EncryptedVolumes, plain: Path, doc: dict) -> bool:
    """Move file system `doc` from the plain directory `plain` to a volume of its own (mounted,
    its files in `volumes.files(id)`) and mark its record; blocking. False (logged) when it could
    not be done: the file system stays in its directory."""
    fs_id = doc["id"]
    if not plain.is_dir():
        log.error("EFS file system %s: its directory %s is missing; not moved to a volume", fs_id, plain)
        return False
    log.warning("EFS file system %s: moving its files from %s onto a volume of its own", fs_id, plain)
    try:
        if volumes.exists(fs_id) or volumes.mountpoint(fs_id).exists():
            volumes.remove(fs_id)  # a move cut short: the directory is still the file system
        volumes.create(fs_id, None)
        files = volumes.files(fs_id)
        run_as(copy_argv(plain, files), None, timeout=COPY_TIMEOUT)
        _flush(volumes, fs_id)
        moved = _remapped_rows(store, fs_id, plain, files)
    except (OSError, EncryptionError, EngineError) as e:
        log.error(
            "EFS file system %s: could not move to a volume of its own (kept in %s): %s", fs_id, plain, e
        )
        try:
            volumes.remove(fs_id)
        except (OSError, EncryptionError) as gone:
            log.error("EFS file system %s: the unfinished volume stays: %s", fs_id, gone)
        return False
    with store.transaction() as c:
        for table, rows in moved.items():
            c.execute(f"DELETE FROM {table} WHERE fs = ?", (fs_id,))  # noqa: S608 - names from _TABLES
            if rows:
                marks = ",".join("?" * len(rows[0]))
                c.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)  # noqa: S608
        store.put_doc("fs", fs_id, {**doc, "volume": True})
    doc["volume"] = True
    remove_leftover(plain)
    log.warning("EFS file system %s: now on a volume of its own", fs_id)
    return True


def copy_argv(source: Path, target: Path) -> list[str]:
    """The command copying the tree in `source` into the existing directory `target` (whose own
    owner, mode, times and xattrs become `source`'s)."""
    if shutil.which("rsync"):
        return [*RSYNC, f"{source}/", f"{target}/"]
    return [*CP, f"{source}/.", str(target)]


def remove_leftover(plain: Path) -> None:
    """Remove the plain directory of a file system already on its volume (a kill -9 came between
    the record's change and the removal); blocking."""
    if plain.exists():
        shutil.rmtree(plain, ignore_errors=True)


def _flush(volumes: EncryptedVolumes, fs_id: str) -> None:
    """Make the copy durable: syncfs on the volume (ext4 flushes its journal; the loop device
    passes the flush on as an fsync of the image), then the image and its directory entry."""
    fd = os.open(volumes.files(fs_id), os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(volumes.files(fs_id)))
    finally:
        os.close(fd)
    for path, flags in ((volumes.image(fs_id), os.O_RDONLY), (volumes.root, os.O_RDONLY | os.O_DIRECTORY)):
        fd = os.open(path, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remapped_rows(store: MetadataStore, fs_id: str, plain: Path, files: Path) -> dict[str, list[tuple]]:
    """The rows of the per-inode tables with each file's inode in `plain` replaced by its copy's
    in `files` (rows of files no longer there are dropped)."""
    rows = {t: [tuple(r) for r in store.query(f"SELECT * FROM {t} WHERE fs = ?", (fs_id,))] for t in _TABLES}  # noqa: S608
    wanted = {r[1] for t in _TABLES for r in rows[t]}
    inodes: dict[int, int] = {}
    if wanted:
        for top, _dirs, names in os.walk(plain):
            for name in names:
                old = os.lstat(os.path.join(top, name)).st_ino
                if old in wanted and old not in inodes:
                    copy = files / os.path.relpath(os.path.join(top, name), plain)
                    inodes[old] = os.lstat(copy).st_ino
    return {t: [(r[0], inodes[r[1]], *r[2:]) for r in rows[t] if r[1] in inodes] for t in _TABLES}
