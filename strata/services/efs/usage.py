"""Metered size of a file system, its Infrequent Access share, and the storage meter.

SizeInBytes is measured from the file system's directory (AWS's metering rules: a regular file
counts its logical size rounded up to 4 KiB, every other entry 4 KiB, an empty file system 6 KiB).

Lifecycle runs on the simulated clock. A file moves to IA once it has not been accessed for the
TransitionToIA number of days, and to Archive after TransitionToArchive days: its last access is
the later of its atime and mtime, mapped from real to simulated time (`clock.to_simulated`). A
file's move is remembered in the `ia` table (keyed by inode; a row goes when its file does), so
without TransitionToPrimaryStorageClass a file stays cold when read, as on AWS; with
AFTER_1_ACCESS a read (an atime after the move) brings it back to Standard and is metered as a
cold access. Reads are seen through the atime despite relatime (see reads.py); a data dir on a
file system mounted noatime records none, so lifecycle policies are refused there.

Storage is metered when a file system is measured (every Describe and every clock advance): the
simulated hours since its last measure times the Standard and IA bytes, and provisioned
throughput's MiB/s over the same hours.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from strata.services.efs import reads
from strata.services.efs.limits import EMPTY_SIZE, TRANSITION_DAYS
from strata.sim.clock import clock
from strata.sim.meter import meter
from strata.storage.metadata import MetadataStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS ia (
    fs TEXT NOT NULL,
    ino INTEGER NOT NULL,
    since REAL NOT NULL,
    archive INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (fs, ino)
) WITHOUT ROWID;
"""
SCHEMA += reads.SCHEMA
BLOCK = 4096


@dataclass
class Size:
    total: int
    ia: int
    at: float
    archive: int = 0

    def render(self) -> dict:
        """SizeInBytes (Timestamp in epoch seconds: JSON documents and the serializer take it)."""
        return {
            "Value": self.total,
            "Timestamp": self.at,
            "ValueInIA": self.ia,
            "ValueInStandard": self.total - self.ia - self.archive,
            "ValueInArchive": self.archive,
        }


def _rounded(n: int) -> int:
    return max(BLOCK, -(-n // BLOCK) * BLOCK)


@dataclass
class _File:
    ino: int
    size: int  # metered bytes
    atime_ns: int
    mtime_ns: int
    path: str


def _walk(root: Path) -> tuple[int, list[_File]]:
    """The metered bytes of every entry, and the regular files."""
    total, files = 0, []
    stack = [str(root)]
    while stack:
        path = stack.pop()
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if e.is_dir(follow_symlinks=False):
                stack.append(e.path)
                total += BLOCK
            elif e.is_file(follow_symlinks=False):
                size = _rounded(st.st_size)
                total += size
                files.append(_File(st.st_ino, size, st.st_atime_ns, st.st_mtime_ns, e.path))
            else:
                total += BLOCK
    return total, files


def measure(store: MetadataStore, doc: dict, root: Path) -> Size:
    """Walk the file system, apply its lifecycle policy, record the meter since the last measure
    (kept in a `usage` document of its own, so measuring never rewrites the file system's record);
    blocking."""
    now = clock.time()
    rules = {k: v for p in doc.get("lifecycle") or [] for k, v in p.items()}
    ia_after = TRANSITION_DAYS.get(rules.get("TransitionToIA", ""), None)
    archive_after = TRANSITION_DAYS.get(rules.get("TransitionToArchive", ""), None)
    back_on_access = rules.get("TransitionToPrimaryStorageClass") == "AFTER_1_ACCESS"
    total, files = _walk(root)
    total += EMPTY_SIZE
    known = {
        r[0]: (r[1], bool(r[2]))
        for r in store.query("SELECT ino, since, archive FROM ia WHERE fs = ?", (doc["id"],))
    }
    seen = dict(store.query("SELECT ino, at FROM accessed WHERE fs = ?", (doc["id"],)))
    read: dict[int, float] = {}  # last read (simulated) of files whose reads outlive their mtime
    rearm: list[_File] = []
    cold: dict[int, tuple[float, bool]] = {}
    ia_bytes, archive_bytes, accessed_bytes = 0, 0, 0
    for f in files:
        ino, size = f.ino, f.size
        written = clock.to_simulated(f.mtime_ns / 1e9)
        last = max(written, seen.get(ino, written))
        if f.atime_ns > f.mtime_ns:
            last = max(last, clock.to_simulated(f.atime_ns / 1e9))
            rearm.append(f)
        if last > written:
            read[ino] = last
        state = known.get(ino)  # (moved at, in Archive) or None while in Standard
        if state is not None and back_on_access and last > state[0]:
            accessed_bytes += size  # read while cold: back to Standard, a metered cold access
            state = None
        idle = now - last
        if archive_after is not None and idle >= archive_after * 86400 and not (state and state[1]):
            state = (now, True)
        elif state is None and ia_after is not None and idle >= ia_after * 86400:
            state = (now, False)
        if state is not None:
            cold[ino] = state
            if state[1]:
                archive_bytes += size
            else:
                ia_bytes += size
    size = Size(total, ia_bytes, now, archive_bytes)
    with store.transaction() as c:
        usage = store.get_doc("usage", doc["id"]) or {"metered_at": doc["created"]}
        c.execute("DELETE FROM ia WHERE fs = ?", (doc["id"],))
        rows = [(doc["id"], i, since, int(archive)) for i, (since, archive) in cold.items()]
        c.executemany("INSERT INTO ia(fs, ino, since, archive) VALUES (?,?,?,?)", rows)
        c.execute("DELETE FROM accessed WHERE fs = ?", (doc["id"],))
        c.executemany(
            "INSERT INTO accessed(fs, ino, at) VALUES (?,?,?)", [(doc["id"], i, at) for i, at in read.items()]
        )
        store.put_doc(
            "usage", doc["id"], {"metered_at": max(now, usage["metered_at"]), "size": size.render()}
        )
    for f in rearm:  # after the reads are stored: a crash before this only means seeing them again
        try:
            reads.rearm(f.path, f.mtime_ns, f.atime_ns)
        except OSError:
            pass  # deleted since the walk
    _meter(doc, usage["metered_at"], size, accessed_bytes)
    return size


def stored_size(store: MetadataStore, fs_id: str) -> dict | None:
    """The SizeInBytes of the last measure (None before the first)."""
    usage = store.get_doc("usage", fs_id)
    return usage["size"] if usage else None


def _meter(doc: dict, last: float, size: Size, accessed: int) -> None:
    hours = max(0.0, size.at - last) / 3600
    dims = {"file_system": doc["id"], "region": doc["region"]}
    if hours:
        classes = {"Standard": size.total - size.ia - size.archive, "IA": size.ia, "Archive": size.archive}
        for name, stored in classes.items():
            if stored or name == "Standard":
                meter.record(
                    "efs", "TimedStorage-ByteHrs", stored * hours, "byte-hours", storage_class=name, **dims
                )
        if doc.get("throughput") == "provisioned":
            meter.record("efs", "ProvisionedTP-MiBpsHrs", doc["provisioned"] * hours, "MiBps-hours", **dims)
    if accessed:
        meter.record("efs", "IADataAccess-Bytes", accessed, "bytes", **dims)
